//! Source text to syntax tree. Never fails: every problem becomes a diagnostic and the
//! item it sits in becomes [`ItemKind::Error`], while the other items parse as usual.

use crate::ast::*;
use crate::diagnostic::{Diagnostic, codes};
use crate::fast;
use crate::scan::{self, MAX_NESTING};
use pest::Parser as _;
use pest::iterators::Pair;
use pest::pratt_parser::{Assoc, Op, PrattParser};
use std::sync::LazyLock;

#[derive(pest_derive::Parser)]
#[grammar = "cairn.pest"]
struct CairnParser;

/// Most operators one expression may chain; the tree it builds is that deep.
pub(crate) const MAX_OPERATORS: usize = 1_000;

#[derive(Debug, Default)]
pub struct Parsed {
    pub file: SourceFile,
    pub diagnostics: Vec<Diagnostic>,
}

impl Parsed {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Parses raw bytes: text that is not UTF-8 gets one located error and no items.
pub fn parse_bytes(bytes: &[u8]) -> Parsed {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(text),
        Err(_) => Parsed {
            file: SourceFile::default(),
            diagnostics: utf8_error(bytes).into_iter().collect(),
        },
    }
}

/// The located error for bytes that are not UTF-8, or `None` when they are.
pub fn utf8_error(bytes: &[u8]) -> Option<Diagnostic> {
    let e = std::str::from_utf8(bytes).err()?;
    let at = e.valid_up_to();
    let len = e.error_len().unwrap_or(bytes.len() - at).max(1);
    Some(
        Diagnostic::error(codes::NOT_UTF8, "this file is not valid UTF-8 text")
            .with_label(Span::new(at, at + len), "invalid byte sequence here")
            .with_help("save the file as UTF-8"),
    )
}

pub fn parse(src: &str) -> Parsed {
    parse_items(src, true)
}

/// [`parse`] with the pest grammar alone, without the fast path: the reference the fast
/// parser is checked against, and the baseline of the benchmark.
#[doc(hidden)]
pub fn parse_reference(src: &str) -> Parsed {
    parse_items(src, false)
}

/// Scans `src` into item chunks and parses each one: with the fast parser first when
/// `fast_path` (the pest grammar decides what it rejects or delegates), else with pest
/// alone.
fn parse_items(src: &str, fast_path: bool) -> Parsed {
    let scanned = scan::scan(src);
    let mut diagnostics = scanned.diagnostics;
    let mut items = Vec::with_capacity(scanned.chunks.len());
    let mut scratch = fast::Scratch::default();
    for chunk in &scanned.chunks {
        let text = &src[chunk.span.start..chunk.span.end];
        let (kind, span) = if chunk.broken {
            (ItemKind::Error, chunk.span)
        } else if fast_path {
            match fast::item(text, &mut scratch) {
                fast::Outcome::Parsed(kind, span) => (kind, span.shift(chunk.span.start)),
                // The reference decides, and words every message.
                fast::Outcome::Rejected | fast::Outcome::Delegated => {
                    reference_item(text, chunk.span.start, src.len(), &mut diagnostics)
                }
            }
        } else {
            reference_item(text, chunk.span.start, src.len(), &mut diagnostics)
        };
        items.push(Item {
            kind,
            span,
            doc: doc_comment(&scanned.comments, src, chunk.span.start),
        });
    }
    diagnostics.sort_by_key(|d| d.primary_span().map(|s| s.start));
    Parsed {
        file: SourceFile {
            items,
            comments: scanned.comments,
        },
        diagnostics,
    }
}

/// One item chunk (`text`, at `offset` in a file of `file_len` bytes) parsed with the
/// pest grammar: its tree and absolute span, its diagnostics added to `diagnostics`.
fn reference_item(
    text: &str,
    offset: usize,
    file_len: usize,
    diagnostics: &mut Vec<Diagnostic>,
) -> (ItemKind, Span) {
    let chunk_span = Span::new(offset, offset + text.len());
    match CairnParser::parse(Rule::item_chunk, text) {
        Ok(mut pairs) => match pairs.next().and_then(|p| p.into_inner().next()) {
            Some(item) => {
                let start = item.as_span().start();
                // Like inner spans, the item ends at its last token, before any comment
                // pest's implicit skipping took in.
                let span = Span::new(offset + start, offset + start + content_len(item.as_str()));
                let mut builder = Builder {
                    base: start,
                    diagnostics: Vec::new(),
                };
                let kind = builder.item(item);
                diagnostics.extend(
                    builder
                        .diagnostics
                        .into_iter()
                        .map(|d| shift(d, span.start)),
                );
                (kind, span)
            }
            None => (ItemKind::Error, chunk_span),
        },
        Err(_) => {
            // Parse again with pest's detailed tracking, which is only worth its cost on
            // the failing path.
            match parse_with_detail(text) {
                Err(err) => diagnostics.push(syntax_error(&err, text, offset, file_len)),
                Ok(_) => diagnostics.push(
                    Diagnostic::error(codes::SYNTAX, "this item could not be parsed")
                        .with_label(chunk_span, ""),
                ),
            }
            (ItemKind::Error, chunk_span)
        }
    }
}

/// How the fast parser and the pest grammar compare on a source; see [`verify`].
#[doc(hidden)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Agreement {
    /// Items both parsed to the same tree and span.
    pub same_tree: usize,
    /// Items both rejected.
    pub both_rejected: usize,
    /// Items the fast parser left to pest, which accepted them with a diagnostic or
    /// holds a `"""` string.
    pub delegated: usize,
}

/// Checks the fast parser against the pest grammar on every item chunk of `src`: the
/// fast parser accepts exactly what pest accepts without a diagnostic (a `"""` string
/// aside) and builds the same tree with the same spans; it rejects exactly what pest
/// rejects. Returns the first disagreement.
#[doc(hidden)]
pub fn verify(src: &str) -> Result<Agreement, String> {
    let scanned = scan::scan(src);
    let mut agreement = Agreement::default();
    let mut scratch = fast::Scratch::default();
    for chunk in scanned.chunks.iter().filter(|c| !c.broken) {
        let text = &src[chunk.span.start..chunk.span.end];
        let mut diagnostics = Vec::new();
        let accepted = CairnParser::parse(Rule::item_chunk, text).is_ok();
        let (kind, span) = reference_item(text, chunk.span.start, src.len(), &mut diagnostics);
        let disagree = |what: &str| {
            Err(format!(
                "{what} at bytes {}..{}:\n{text}\n",
                chunk.span.start, chunk.span.end
            ))
        };
        match fast::item(text, &mut scratch) {
            fast::Outcome::Parsed(fast_kind, fast_span) => {
                if !accepted {
                    return disagree("the fast parser accepts an item pest rejects");
                }
                if !diagnostics.is_empty() {
                    return disagree(
                        "the fast parser accepts an item pest accepts with a diagnostic",
                    );
                }
                if fast_span.shift(chunk.span.start) != span {
                    return disagree(&format!(
                        "item span {:?} differs from pest's {span:?}",
                        fast_span.shift(chunk.span.start)
                    ));
                }
                if fast_kind != kind {
                    return disagree(&format!(
                        "the trees differ:\nfast: {fast_kind:#?}\npest: {kind:#?}"
                    ));
                }
                agreement.same_tree += 1;
            }
            fast::Outcome::Rejected => {
                if accepted {
                    return disagree("the fast parser rejects an item pest accepts");
                }
                agreement.both_rejected += 1;
            }
            fast::Outcome::Delegated => {
                if !accepted {
                    return disagree("the fast parser delegates an item pest rejects");
                }
                if diagnostics.is_empty() && !text.contains("\"\"\"") {
                    return disagree(
                        "the fast parser delegates an item pest accepts without a diagnostic",
                    );
                }
                agreement.delegated += 1;
            }
        }
    }
    Ok(agreement)
}

/// The `///` lines directly above `item_start`, joined without their slashes.
fn doc_comment(comments: &[Comment], src: &str, item_start: usize) -> Option<String> {
    let below = comments.partition_point(|c| c.span.start < item_start);
    let mut lines = Vec::new();
    let mut next_start = item_start;
    for c in comments[..below].iter().rev() {
        let between = &src[c.span.end..next_start];
        // A doc comment stands on its own line, directly above the item or the next
        // doc line: one that ends a line of code belongs to that code. `between` may
        // span a whole item, so its newlines are only counted once it is blank.
        if !c.is_doc()
            || !between.trim().is_empty()
            || between.bytes().filter(|&b| b == b'\n').count() != 1
            || !src[line_start(src, c.span.start)..c.span.start]
                .trim()
                .is_empty()
        {
            break;
        }
        let line = c.text.trim_start_matches("///");
        lines.push(
            line.strip_prefix(' ')
                .unwrap_or(line)
                .trim_end()
                .to_string(),
        );
        next_start = line_start(src, c.span.start);
    }
    if lines.is_empty() {
        return None;
    }
    lines.reverse();
    Some(lines.join("\n"))
}

fn line_start(src: &str, at: usize) -> usize {
    src[..at].rfind('\n').map_or(0, |p| p + 1)
}

// ------------------------------------------------------------------ errors

fn syntax_error(
    err: &pest::error::Error<Rule>,
    chunk: &str,
    offset: usize,
    file_len: usize,
) -> Diagnostic {
    use Rule::*;
    let mut pos = match err.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let positives: &[Rule] = match &err.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => positives,
        pest::error::ErrorVariant::CustomError { .. } => &[],
    };
    let attempts = err.parse_attempts();
    let tokens: Vec<String> = attempts
        .as_ref()
        .map(|a| a.expected_tokens().iter().map(|t| t.to_string()).collect())
        .unwrap_or_default();
    let furthest = attempts.as_ref().map_or(pos, |a| a.max_position);
    let meaningful = |t: &String| MEANINGFUL_PUNCTUATION.contains(&t.as_str());
    // pest puts a failing literal (`..`, `->`, `{`) at the start of the rule around it,
    // while the attempts know how far the text really got: point there. Not inside a
    // literal such as a date, whose furthest point is mid-token: there the literal as a
    // whole is what is wrong.
    let inside_literal = positives.iter().any(|r| {
        matches!(
            r,
            datetime
                | date
                | time
                | duration
                | calendar_duration
                | bad_duration
                | money
                | percent
                | number
                | integer
                | signed_number
                | string
                | plain_string
                | triple_string
        )
    });
    // Only when a whole statement or item failed at `pos` (pest names the statement,
    // not the literal inside it); a leaf such as an operator failing at `pos` is the
    // real place, and tokens further on belong to what could follow.
    let statement_failed = positives.is_empty()
        || positives.iter().any(|r| {
            *r == item_chunk
                || (*r != step
                    && matches!(
                        describe_rule(*r),
                        Some("an item" | "a journey option" | "a step" | "a field")
                    ))
                || matches!(
                    r,
                    trigger
                        | test_contact
                        | test_input
                        | test_expect
                        | score_on
                        | score_decay
                        | template_prop
                        | split_arm
                        | object_entry
                )
        })
        // The generic `step` fails at its start both when a step such as `set x "a"`
        // misses its `=` and when a word that is no step was taken for a label and
        // then misses its `:`. Only the first is worth moving for.
        || (positives.contains(&step)
            && tokens.iter().any(|t| meaningful(t) && t != ":"));
    let mut expected: Vec<String> = Vec::new();
    let push = |expected: &mut Vec<String>, s: String| {
        if !expected.contains(&s) {
            expected.push(s);
        }
    };
    if furthest > pos && statement_failed && !inside_literal && tokens.iter().any(meaningful) {
        pos = furthest;
        tokens
            .iter()
            .filter(|t| meaningful(t))
            .for_each(|t| push(&mut expected, format!("`{t}`")));
    } else {
        for rule in positives {
            if let Some(d) = describe_rule(*rule) {
                push(&mut expected, d.to_string());
            }
        }
        if furthest == pos {
            // Punctuation only: keywords come through their rules, ranges and
            // built-in rules are noise to a reader.
            tokens
                .iter()
                .filter(|t| meaningful(t))
                .for_each(|t| push(&mut expected, format!("`{t}`")));
            // A statement could end here: a separator was possible (inside brackets
            // only newlines are) after something on this line that is not an opening.
            let line_before = chunk[..pos].rsplit('\n').next().unwrap_or("").trim_end();
            let statement_on_line =
                !line_before.is_empty() && !line_before.ends_with(['{', '(', '[', ',', ':']);
            if statement_on_line
                && tokens.iter().any(|t| t == "\n")
                && tokens.iter().any(|t| t == ";")
            {
                push(&mut expected, "the end of the line".to_string());
            }
        }
    }
    let before = &chunk[..pos.min(chunk.len())];
    let rest = &chunk[pos.min(chunk.len())..];
    // Nothing but blanks, `;` and comments before: an item was due, whatever pest says.
    let blank = |c: char| c.is_whitespace() || c == ';' || c == '\u{FEFF}';
    let only_blank = |text: &str| {
        text.lines().all(|l| {
            let l = l.trim_matches(blank);
            l.is_empty() || l.starts_with("//")
        })
    };
    let nothing_left = only_blank(rest);
    if only_blank(before) && (expected.is_empty() || nothing_left) {
        // A lone `;` outside an item: the scanner made a chunk of it.
        if let Some(semicolon) = before.find(';').filter(|_| nothing_left) {
            let at = offset + semicolon;
            return Diagnostic::error(codes::SYNTAX, "unexpected `;` outside an item")
                .with_label(Span::new(at, at + 1), "nothing to separate here")
                .with_help("remove it: `;` separates statements inside an item");
        }
        expected = vec!["an item".to_string()];
    }

    // `10 mo`: a number and a word that is not a unit, where a duration belongs.
    if expected.iter().any(|e| e.starts_with("a duration")) {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let blanks = rest[digits..]
            .bytes()
            .take_while(|b| *b == b' ' || *b == b'\t')
            .count();
        let word_at = digits + blanks;
        let word = rest[word_at..]
            .bytes()
            .take_while(u8::is_ascii_alphabetic)
            .count();
        let unit = &rest[word_at..word_at + word];
        let whole_word = !rest[word_at + word..]
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        const NOT_UNITS: &[&str] = &[
            "and", "or", "not", "in", "is", "as", "where", "within", "unless", "else", "timeout",
            "to", "at", "local", "every", "times", "per", "skip", "defer",
        ];
        if digits > 0 && blanks > 0 && word > 0 && whole_word && !NOT_UNITS.contains(&unit) {
            let n = &rest[..digits];
            let help = match unit {
                "mo" | "mon" | "mos" | "mth" | "mths" => {
                    format!("write `{n} months` for calendar months")
                }
                "yr" | "yrs" => format!("write `{n} years` for calendar years"),
                "min" | "mins" => format!("write `{n}m` or `{n} minutes`"),
                "hr" | "hrs" => format!("write `{n}h` or `{n} hours`"),
                "sec" | "secs" => format!("write `{n}s` or `{n} seconds`"),
                "wk" | "wks" => format!("write `{n}w` or `{n} weeks`"),
                _ => "use `s`, `m`, `h`, `d` or `w` for exact time (`2h`, `7 days`), \
                      `months` or `years` for calendar time (`6 months`)"
                    .to_string(),
            };
            let at = offset + pos + word_at;
            return Diagnostic::error(
                codes::INVALID_LITERAL,
                format!("unknown duration unit `{unit}`"),
            )
            .with_label(Span::new(at, at + word), "not a unit")
            .with_help(help);
        }
    }

    let (found, found_len) = describe_found(chunk, pos, offset + chunk.len() >= file_len);
    let summary = summarize(&expected);
    let start = offset + pos;
    let span = Span::new(start, start + found_len);
    let message = if summary.is_empty() {
        format!("unexpected {found}")
    } else {
        format!("expected {summary}, found {found}")
    };
    let mut diagnostic = Diagnostic::error(codes::SYNTAX, message).with_label(
        span,
        if summary.is_empty() {
            "unexpected here".to_string()
        } else {
            format!("expected {summary}")
        },
    );
    if let Some(help) = help_for(&expected, chunk, pos) {
        diagnostic = diagnostic.with_help(help);
    }
    diagnostic
}

/// Punctuation worth naming in an "expected ..." message; the rest (`//`, `_`, quotes,
/// signs) only ever shows up there as noise from comments and literals.
const MEANINGFUL_PUNCTUATION: &[&str] =
    &["{", "}", "(", ")", "[", "]", ":", "=", "->", "..", ",", "|"];

/// What stands at `pos`, as the message names it, and how many bytes to underline: a
/// whole word, a whole literal (`2026-03-01T10:00`, `50%`), a whole string on its line,
/// or one character.
fn describe_found(chunk: &str, pos: usize, at_file_end: bool) -> (String, usize) {
    let rest = &chunk[pos.min(chunk.len())..];
    let Some(first) = rest.chars().next() else {
        let what = if at_file_end {
            "the end of the file"
        } else {
            "the end of the item"
        };
        return (what.to_string(), 0);
    };
    if first == '\n' || first == '\r' {
        return ("the end of the line".to_string(), 0);
    }
    let line = &rest[..rest.find(['\n', '\r']).unwrap_or(rest.len())];
    let len = if first == '"' {
        // Up to the closing quote, or the end of the line.
        let mut escaped = false;
        line.char_indices()
            .skip(1)
            .find(|&(_, c)| {
                let close = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                close
            })
            .map_or(line.len(), |(i, _)| i + 1)
    } else if first.is_ascii_digit() {
        // A number-like literal: digits, letters, `%`, and `.`, `:`, `-`, `+` before a
        // digit (`12.5`, `09:00`, `2026-03-01T10:00+02:00`).
        let bytes = line.as_bytes();
        let mut end = 0;
        while end < bytes.len() {
            let b = bytes[end];
            let next_is_digit = bytes.get(end + 1).is_some_and(u8::is_ascii_digit);
            if b.is_ascii_alphanumeric()
                || matches!(b, b'_' | b'%')
                || (matches!(b, b':' | b'-' | b'+' | b'.') && next_is_digit)
            {
                end += 1;
            } else {
                break;
            }
        }
        end
    } else {
        let word = line
            .char_indices()
            .find(|&(_, c)| !(c.is_alphanumeric() || c == '_'))
            .map_or(line.len(), |(i, _)| i);
        if word > 0 { word } else { first.len_utf8() }
    };
    (format!("`{}`", &rest[..len]), len)
}

fn describe_rule(rule: Rule) -> Option<&'static str> {
    use Rule::*;
    Some(match rule {
        ident | label | named_type | path => "a name",
        string | plain_string | triple_string => "a string",
        expr | term | call_arg | paren | call | list_lit => "an expression",
        object => "`{`",
        duration | calendar_duration | bad_duration | duration_word => {
            "a duration such as `2h`, `7d` or `6 months`"
        }
        time => "a time of day such as `09:00`",
        datetime => "a date and time such as `2026-03-01T10:00Z`",
        date => "a date such as `2026-03-01`",
        integer => "a whole number",
        number | decimal => "a number",
        signed_number => "a signed number such as `+5`",
        percent => "a percentage such as `50%`",
        money => "an amount such as `80 EUR`",
        channel | K_EMAIL | K_SMS | K_PUSH => "a channel (`email`, `sms` or `push`)",
        cap_scope => "`marketing` or a channel (`email`, `sms` or `push`)",
        cap_action => "`defer` or `skip`",
        unsubscribe_scope => "`all` or a channel (`email`, `sms` or `push`)",
        template_choice => "a template name",
        step_ref => "a step name",
        time_clause => "`at` or `until`",
        block | event_fields => "`{`",
        timeout_branch => "`timeout`",
        else_branch => "`else`",
        unless_clause => "`unless`",
        boolean => "`true` or `false`",
        in_sends | in_updates | in_opens | in_clicks | in_unsubscribes | in_visits | in_grants => {
            "an action such as `sends`, `opens` or `clicks`"
        }
        type_expr | enum_type | list_type => "a type",
        field => "a field",
        step | step_kind | send_step | post_step | wait_step | wait_until_step | wait_for_step
        | if_step | split_step | tag_step | score_step | set_step | retry_step | goal_step
        | exit_step => "a step",
        trigger => "`when`",
        audience_opt | reenter_opt | goal_opt | exit_opt | migrate_opt | drain_opt => {
            "a journey option"
        }
        trig_event | trig_anniversary | trig_inactive | trig_segment | trig_tag | trig_page
        | trig_created | trig_consent => "a trigger",
        split_arm => "a split arm such as `50% a: ...`",
        test_contact | test_input | test_expect => "a test statement (`contact`, `at` or `expect`)",
        score_on | score_decay => "a score rule such as `+5 on email_opened`",
        template_prop => "a template field such as `subject \"...\"`",
        contact_schema | consent_decl | record_decl | event_decl | tag_decl | segment_decl
        | score_decl | template_decl | quiet_hours | frequency_cap | journey_decl | test_decl => {
            "an item"
        }
        EOI => "the end of the line",
        op_or | op_and | op_eq | op_ne | op_le | op_ge | op_lt | op_gt | op_in | op_not_in
        | op_add | op_sub | op_mul | op_div => "an operator",
        member | is_set | is_not_set => "an operator",
        K_ADD => "`add`",
        K_ADDED => "`added`",
        K_AFTER => "`after`",
        K_ALL => "`all`",
        K_ALWAYS => "`always`",
        K_AND => "`and`",
        K_ANNIVERSARY => "`anniversary`",
        K_ARM => "`arm`",
        K_AS => "`as`",
        K_AT => "`at`",
        K_AUDIENCE => "`audience`",
        K_BEST => "`best`",
        K_CAP => "`cap`",
        K_CHANNEL => "`channel`",
        K_CLICKS => "`clicks`",
        K_CONSENT => "`consent`",
        K_CONTACT => "`contact`",
        K_CREATED => "`created`",
        K_DECAY => "`decay`",
        K_DEFER => "`defer`",
        K_DRAIN => "`drain`",
        K_ELSE => "`else`",
        K_ENTER => "`enter`",
        K_ENTERS => "`enters`",
        K_ENUM => "`enum`",
        K_EVENT => "`event`",
        K_EVERY => "`every`",
        K_EXIT => "`exit`",
        K_EXPECT => "`expect`",
        K_FALSE => "`false`",
        K_FILE => "`file`",
        K_FOR => "`for`",
        K_FREQUENCY => "`frequency`",
        K_FROM => "`from`",
        K_GOAL => "`goal`",
        K_GRANTED => "`granted`",
        K_GRANTS => "`grants`",
        K_HOURS => "`hours`",
        K_IF => "`if`",
        K_IN => "`in`",
        K_IS => "`is`",
        K_JOURNEY => "`journey`",
        K_LEAVES => "`leaves`",
        K_LIST => "`list`",
        K_LOCAL => "`local`",
        K_MARKETING => "`marketing`",
        K_MIGRATE => "`migrate`",
        K_MOST => "`most`",
        K_NEVER => "`never`",
        K_NO => "`no`",
        K_NOT => "`not`",
        K_NOTHING => "`nothing`",
        K_OF => "`of`",
        K_ON => "`on`",
        K_OPENS => "`opens`",
        K_OR => "`or`",
        K_PAGE => "`page`",
        K_PER => "`per`",
        K_POST => "`post`",
        K_PREFERRED => "`preferred`",
        K_QUIET => "`quiet`",
        K_REASON => "`reason`",
        K_RECORD => "`record`",
        K_REENTER => "`reenter`",
        K_REMOVE => "`remove`",
        K_REMOVED => "`removed`",
        K_RETRY => "`retry`",
        K_SCORE => "`score`",
        K_SEGMENT => "`segment`",
        K_SEND => "`send`",
        K_SENDS => "`sends`",
        K_SET => "`set`",
        K_SKIP => "`skip`",
        K_SPLIT => "`split`",
        K_TAG => "`tag`",
        K_TEMPLATE => "`template`",
        K_TEST => "`test`",
        K_TIME => "`time`",
        K_TIMEOUT => "`timeout`",
        K_TIMES => "`times`",
        K_TO => "`to`",
        K_TRANSACTIONAL => "`transactional`",
        K_TRUE => "`true`",
        K_UNLESS => "`unless`",
        K_UNSUBSCRIBES => "`unsubscribes`",
        K_UNTIL => "`until`",
        K_UPDATES => "`updates`",
        K_VIA => "`via`",
        K_VISITED => "`visited`",
        K_VISITS => "`visits`",
        K_WAIT => "`wait`",
        K_WHEN => "`when`",
        K_WHERE => "`where`",
        K_WITHIN => "`within`",
        _ => return None,
    })
}

/// Up to five expectations are listed; longer lists are folded into what they have in
/// common so the message stays readable.
fn summarize(expected: &[String]) -> String {
    const OPERATOR_WORDS: &[&str] = &["`and`", "`or`", "`in`", "`is`", "`not`"];
    const STEP_WORDS: &[&str] = &[
        "`send`", "`post`", "`wait`", "`if`", "`split`", "`tag`", "`score`", "`set`", "`retry`",
        "`goal`", "`exit`",
    ];
    const EXPECTATION_WORDS: &[&str] = &[
        "`send`",
        "`split`",
        "`tag`",
        "`score`",
        "`goal`",
        "`exit`",
        "`skip`",
        "`defer`",
        "`enter`",
        "`nothing`",
    ];
    const EXPECTATION: &str = "an expectation such as `send`, `tag`, `goal` or `nothing`";
    let mut list: Vec<&str> = expected.iter().map(String::as_str).collect();
    let count = |list: &[&str], words: &[&str]| list.iter().filter(|e| words.contains(e)).count();
    // Keyword sets stand for the construct they start.
    const ACTION_WORDS: &[&str] = &[
        "`sends`",
        "`updates`",
        "`opens`",
        "`clicks`",
        "`unsubscribes`",
        "`visits`",
        "`grants`",
    ];
    const ACTION: &str = "an action such as `sends`, `opens` or `clicks`";
    if count(&list, ACTION_WORDS) >= 4 {
        list.retain(|e| !ACTION_WORDS.contains(e));
        if !list.contains(&ACTION) {
            list.insert(0, ACTION);
        }
    }
    let is_test = list.contains(&"`nothing`") || list.contains(&"`enter`");
    if is_test && count(&list, EXPECTATION_WORDS) >= 4 {
        list.retain(|e| !EXPECTATION_WORDS.contains(e) && *e != "`no`");
        list.insert(0, EXPECTATION);
    } else if count(&list, STEP_WORDS) >= 3 {
        list.retain(|e| !STEP_WORDS.contains(e));
        if !list.contains(&"a step") {
            list.insert(0, "a step");
        }
    }
    if list.contains(&"a step") {
        list.retain(|e| !(e.starts_with('`') && e.len() <= 12 && *e != "`}`") || *e == "`{`");
    }
    if list.contains(&"an item") {
        list.retain(|e| {
            *e != "`contact`"
                && *e != "`tag`"
                && *e != "`score`"
                && *e != "`quiet`"
                && *e != "`frequency`"
        });
    }
    // `and`, `or`, ... are operators; an operator is the least likely fix, so it goes last.
    if list.contains(&"an operator") {
        list.retain(|e| !OPERATOR_WORDS.contains(e) && *e != "an operator");
        list.push("an operator");
    }
    // Brackets that only start an expression say nothing more than "an expression".
    if list.contains(&"an expression") {
        list.retain(|e| !matches!(*e, "`(`" | "`[`" | "`{`"));
    }
    // A trigger is a name or a keyword; "a name" on top of it is noise.
    if list.contains(&"a trigger") {
        list.retain(|e| *e != "a name");
    }
    // `:` shows up wherever the word before could have been a step label; it is worth
    // naming only when nothing else fits.
    if list.len() > 1 {
        list.retain(|e| *e != "`:`");
    }
    if list.len() > 5 {
        let keep: Vec<&str> = list
            .iter()
            .copied()
            .filter(|e| !e.starts_with('`'))
            .collect();
        if !keep.is_empty() && keep.len() <= 5 {
            list = keep;
        } else {
            list.truncate(5);
        }
    }
    match list.as_slice() {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn help_for(expected: &[String], chunk: &str, pos: usize) -> Option<String> {
    const RESERVED: &[&str] = &[
        "and", "or", "not", "in", "is", "as", "where", "within", "unless", "true", "false", "else",
        "timeout", "to", "at",
    ];
    const STEP_WORDS: &[&str] = &[
        "send", "post", "wait", "if", "split", "tag", "score", "set", "retry", "goal", "exit",
    ];
    const ITEM_WORDS: &[&str] = &[
        "contact",
        "consent",
        "record",
        "event",
        "tag",
        "segment",
        "score",
        "template",
        "quiet",
        "frequency",
        "journey",
        "test",
    ];
    const OPERATORS: &[&str] = &[
        "and ", "or ", "not in ", "in ", "==", "!=", "<", ">", "+", "*", "where ", "within ",
    ];
    /// Edits (insert, delete, replace, swap two neighbours) from `a` to `b`.
    fn distance(a: &str, b: &str) -> usize {
        let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        let mut d = vec![vec![0; b.len() + 1]; a.len() + 1];
        for (i, row) in d.iter_mut().enumerate() {
            row[0] = i;
        }
        for (j, cell) in d[0].iter_mut().enumerate() {
            *cell = j;
        }
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                d[i][j] = (d[i - 1][j] + 1)
                    .min(d[i][j - 1] + 1)
                    .min(d[i - 1][j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
                }
            }
        }
        d[a.len()][b.len()]
    }

    let has = |e: &str| expected.iter().any(|x| x == e);
    let has_prefix = |p: &str| expected.iter().any(|x| x.starts_with(p));
    let rest = chunk.get(pos..).unwrap_or("");
    let before = chunk.get(..pos).unwrap_or("");
    let word_len = rest
        .char_indices()
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '_'))
        .map_or(rest.len(), |(i, _)| i);
    let word = &rest[..word_len];
    let line_before = &before[before.rfind('\n').map_or(0, |i| i + 1)..];
    let at_line_end = rest.is_empty() || rest.starts_with(['\n', '\r']);

    if rest.starts_with(['“', '”', '„', '‘', '’', '«', '»']) {
        return Some("write text between straight double quotes: `\"...\"`".into());
    }
    if word == "else" {
        return Some("`else` goes right after the `}` of an `if` block: `} else {`".into());
    }
    if RESERVED.contains(&word) && (has("a name") || has("a step")) {
        return Some(format!(
            "`{word}` is a reserved word and cannot be used as a name; choose another name"
        ));
    }
    let non_ascii = rest
        .chars()
        .next()
        .is_some_and(|c| !c.is_ascii() && c.is_alphanumeric())
        || before
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && rest.chars().next().is_some_and(|c| !c.is_ascii());
    if non_ascii || (has("a name") && rest.chars().next().is_some_and(|c| !c.is_ascii())) {
        return Some(
            "names use only the letters `a`-`z` and `A`-`Z`, digits and `_`; \
             other characters belong in strings"
                .into(),
        );
    }
    if has("a name") && rest.starts_with('"') {
        return Some("names are written without quotes".into());
    }
    // A misspelt keyword: the closest one that was possible here.
    if word_len > 1 && word.is_ascii() {
        let mut candidates: Vec<&str> = expected
            .iter()
            .flat_map(|e| e.split('`').skip(1).step_by(2))
            .filter(|k| k.chars().all(|c| c.is_ascii_lowercase()))
            .collect();
        if has("a step") {
            candidates.extend(STEP_WORDS);
        }
        // At the start of a line after a finished item, a new item was meant.
        if has("an item") || (line_before.trim().is_empty() && has("the end of the line")) {
            candidates.extend(ITEM_WORDS);
        }
        let limit = if word.len() <= 4 { 1 } else { 2 };
        let best = candidates
            .iter()
            .map(|k| (distance(word, k), usize::from(k.len() != word.len()), *k))
            .filter(|&(d, _, k)| d > 0 && d <= limit && k.len() > 1)
            .min();
        if let Some((_, _, keyword)) = best {
            return Some(format!("did you mean `{keyword}`?"));
        }
    }
    if has_prefix("a duration") {
        return Some("durations are a whole number and a unit: `s`, `m`, `h`, `d`, `w`, or `months`/`years` for calendar time".into());
    }
    if has_prefix("a time of day") && rest.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        return Some("times of day have two-digit hours and minutes: `09:00`, `21:30`".into());
    }
    if has_prefix("a date and time") {
        let literal_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '+')))
            .unwrap_or(rest.len());
        let literal = &rest[..literal_len];
        if literal.len() >= 16 && !literal.ends_with('Z') && literal[10..].contains('T') {
            return Some(format!(
                "add a time zone: `{literal}Z` for UTC, or an offset such as `+02:00`"
            ));
        }
        return Some("write a date and time as `2026-03-01T10:00Z` (`Z` is UTC; or an offset such as `+02:00`)".into());
    }
    if has_prefix("a signed number") && rest.starts_with(|c: char| c.is_ascii_digit()) {
        return Some("points need a sign: `+5` adds points, `-5` takes them away".into());
    }
    if rest.starts_with('=') && !rest.starts_with("==") && has("an operator") {
        return Some("compare with `==`; `=` only assigns, in `set`".into());
    }
    if has("a trigger") {
        return Some(
            "say what starts the journey, such as `when cart_updated` or `when contact created`"
                .into(),
        );
    }
    if has("a type") {
        return Some(
            "a field is a name and a type, such as `phone phone?` or `tier string = \"none\"`"
                .into(),
        );
    }
    if has_prefix("a percentage") {
        if rest.starts_with(|c: char| c.is_ascii_digit()) {
            return Some("write a percentage with `%`, such as `10%`".into());
        }
        return Some(
            "each arm of a split is a share, a name and a step: `50% a: send email offer`".into(),
        );
    }
    if has("a name") && line_before.contains("enum") && rest.starts_with('}') {
        return Some("list the values of the enum: `enum { bronze, silver, gold }`".into());
    }
    let first_word = line_before.split_whitespace().next().unwrap_or("");
    if has("a name") && rest.starts_with('{') && ITEM_WORDS.contains(&first_word) {
        return Some(format!(
            "give the {first_word} a name: `{first_word} my_name {{`"
        ));
    }
    if first_word == "test" && expected.first().is_some_and(|e| e == "a string") {
        return Some("name the test with a string: `test \"cart reminder is sent\" {`".into());
    }
    if has("`within`") && line_before.contains("unless") {
        return Some("`unless` needs a time window: `unless order_completed within 2h`".into());
    }
    if has("`..`") {
        return Some("write a window of time as `from..to`, such as `21:00..08:00`".into());
    }
    if has("`=`") && first_word == "set" {
        return Some("assign with `=`: `set contact.tier = \"gold\"`".into());
    }
    if has("`->`") {
        return Some("write a migration as `migrate old_label -> new_label`, or quote the ID of an unlabelled step: `migrate \"remind.wait#1\" -> new_label`".into());
    }
    if has("an item") {
        return Some("a file holds items: `contact`, `consent`, `record`, `event`, `tag`, `segment`, `score`, `template`, `quiet hours`, `frequency cap`, `journey` and `test`".into());
    }
    if ITEM_WORDS.contains(&word) && !line_before.trim().is_empty() && has("the end of the line") {
        return Some(format!(
            "each item starts on a line of its own: put `{word}` on a new line"
        ));
    }
    if at_line_end {
        // An operator at the start of the next line does not continue this one.
        let next = rest.trim_start_matches([' ', '\t', '\r', '\n']);
        if let Some(op) = OPERATORS.iter().find(|op| next.starts_with(**op)) {
            let op = op.trim();
            return Some(format!(
                "a line cannot start with `{op}`: end this line with `{op}` to continue the condition on the next one"
            ));
        }
        if line_before.trim_end().ends_with(':') {
            return Some(
                "a label names the step after it on the same line: `first: send email welcome`"
                    .into(),
            );
        }
        if has("`{`") {
            return Some("start the block with `{` at the end of this line".into());
        }
        if has("a name") && line_before.trim_start().starts_with("send ") {
            return Some("name the template to send: `send email welcome`".into());
        }
    }
    let next_word = rest[word_len..]
        .trim_start_matches([' ', '\t'])
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .next()
        .unwrap_or("");
    if has("a step") && word_len > 0 && STEP_WORDS.contains(&next_word) {
        return Some(format!(
            "if `{word}` is a label, follow it with `:`, as in `{word}: {next_word} ...`"
        ));
    }
    let in_split_arm = line_before
        .trim_start()
        .starts_with(|c: char| c.is_ascii_digit())
        && line_before.contains('%');
    if in_split_arm && (has("a name") || has("`:`")) {
        return Some(
            "each arm of a split is a share, a name and a step: `50% a: send email offer`".into(),
        );
    }
    if has("`:`") && expected.len() == 1 {
        return Some("write each entry as `name: value`".into());
    }
    if has("`{`") && STEP_WORDS.contains(&word) {
        return Some("steps go inside a block: `{ ... }`".into());
    }
    if expected.first().is_some_and(|e| e == "a string") && !rest.starts_with('"') {
        return Some("write text between double quotes: `\"...\"`".into());
    }
    if word.len() == 3
        && has("an operator")
        && word.chars().all(|c| c.is_ascii_lowercase())
        && before.trim_end().ends_with(|c: char| c.is_ascii_digit())
    {
        return Some(format!(
            "currency codes are written in capitals: `{}`",
            word.to_ascii_uppercase()
        ));
    }
    // `cart reminder` for `cart_reminder`: a second word right after a name.
    let after_name = line_before.ends_with([' ', '\t'])
        && line_before
            .trim_end()
            .ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
    if word_len > 0 && after_name && !has("an operator") && has("the end of the line") {
        let previous = line_before.trim_end();
        let start = previous
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_'))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let name = &previous[start..];
        if !STEP_WORDS.contains(&name) && !ITEM_WORDS.contains(&name) {
            return Some(format!(
                "names cannot contain spaces: if `{name} {word}` is one name, write `{name}_{word}`"
            ));
        }
    }
    if has("the end of the line") {
        return Some("put each statement on its own line, or separate them with `;`".into());
    }
    None
}

// ------------------------------------------------------------------ tree building

static PRATT: LazyLock<PrattParser<Rule>> = LazyLock::new(|| {
    PrattParser::new()
        .op(Op::infix(Rule::op_or, Assoc::Left))
        .op(Op::infix(Rule::op_and, Assoc::Left))
        .op(Op::prefix(Rule::op_not))
        .op(Op::infix(Rule::op_eq, Assoc::Left)
            | Op::infix(Rule::op_ne, Assoc::Left)
            | Op::infix(Rule::op_lt, Assoc::Left)
            | Op::infix(Rule::op_le, Assoc::Left)
            | Op::infix(Rule::op_gt, Assoc::Left)
            | Op::infix(Rule::op_ge, Assoc::Left)
            | Op::infix(Rule::op_in, Assoc::Left)
            | Op::infix(Rule::op_not_in, Assoc::Left))
        .op(Op::infix(Rule::op_add, Assoc::Left) | Op::infix(Rule::op_sub, Assoc::Left))
        .op(Op::infix(Rule::op_mul, Assoc::Left) | Op::infix(Rule::op_div, Assoc::Left))
        .op(Op::prefix(Rule::op_neg))
        .op(Op::postfix(Rule::member) | Op::postfix(Rule::is_set) | Op::postfix(Rule::is_not_set))
});

/// Parses a failing chunk again with pest's detailed tracking on. The switch is
/// process-wide, so it is turned on only for this re-parse, under a lock that keeps
/// failing parses on other threads from turning it off mid-way; successful parses never
/// pay for it.
fn parse_with_detail(
    text: &str,
) -> Result<pest::iterators::Pairs<'_, Rule>, pest::error::Error<Rule>> {
    static DETAIL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = DETAIL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    pest::set_error_detail(true);
    let result = CairnParser::parse(Rule::item_chunk, text);
    pest::set_error_detail(false);
    result
}

/// Builds one item's tree. Spans inside an item are relative to the item's start (see
/// [`Item`]), so an edit elsewhere in the file leaves the item's tree unchanged.
struct Builder {
    /// Where the item starts in the chunk text pest saw.
    base: usize,
    /// Diagnostics with item-relative spans; the caller shifts them.
    diagnostics: Vec<Diagnostic>,
}

/// Keyword rules carry no content; the tree builder skips them.
static KEYWORD_RULES: LazyLock<Vec<bool>> = LazyLock::new(|| {
    let rules = Rule::all_rules();
    let mut table = vec![false; rules.iter().map(|r| *r as usize).max().unwrap_or(0) + 1];
    for rule in rules {
        table[*rule as usize] = format!("{rule:?}").starts_with("K_");
    }
    table
});

fn is_keyword(rule: Rule) -> bool {
    KEYWORD_RULES.get(rule as usize).copied().unwrap_or(false)
}

/// Length of `text` without trailing whitespace, `;` and `//` comments.
pub(crate) fn content_len(text: &str) -> usize {
    let mut end = text.len();
    loop {
        let trimmed = text[..end].trim_end_matches([' ', '\t', '\r', '\n', ';', '\u{FEFF}']);
        end = trimmed.len();
        let line_start = trimmed.rfind('\n').map_or(0, |i| i + 1);
        match comment_start(&trimmed[line_start..]) {
            Some(at) => end = line_start + at,
            None => return end,
        }
    }
}

/// Where a `//` comment starts in one line, outside string literals.
fn comment_start(line: &str) -> Option<usize> {
    if !line.contains("//") {
        return None;
    }
    let bytes = line.as_bytes();
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn shift(mut diagnostic: Diagnostic, by: usize) -> Diagnostic {
    for label in &mut diagnostic.labels {
        label.span = Span::new(label.span.start + by, label.span.end + by);
    }
    diagnostic
}

impl Builder {
    /// The pair's span without the whitespace and comments pest's implicit skipping
    /// leaves at its end (before an optional part that then did not match).
    fn span(&self, pair: &Pair<Rule>) -> Span {
        let s = pair.as_span();
        let len = content_len(pair.as_str());
        Span::new(s.start() - self.base, s.start() + len - self.base)
    }

    fn ident(&self, pair: Pair<Rule>) -> Ident {
        let pair = if pair.as_rule() == Rule::ident {
            pair
        } else {
            pair.into_inner()
                .next()
                .expect("grammar: wrapper around an ident")
        };
        Ident {
            name: pair.as_str().to_string(),
            span: self.span(&pair),
        }
    }

    /// The children that carry content, keywords left out.
    fn kids<'i>(pair: Pair<'i, Rule>) -> impl Iterator<Item = Pair<'i, Rule>> {
        pair.into_inner().filter(|p| !is_keyword(p.as_rule()))
    }

    fn has_keyword(pair: &Pair<Rule>, keyword: Rule) -> bool {
        pair.clone().into_inner().any(|p| p.as_rule() == keyword)
    }

    fn item(&mut self, pair: Pair<Rule>) -> ItemKind {
        match pair.as_rule() {
            Rule::contact_schema => ItemKind::Contact(ContactSchema {
                fields: Self::kids(pair).map(|p| self.field(p)).collect(),
            }),
            Rule::consent_decl => {
                let mut kids = Self::kids(pair);
                let name = self.ident(kids.next().expect("grammar: consent name"));
                let channel = channel(&kids.next().expect("grammar: consent channel"));
                ItemKind::Consent(ConsentDecl { name, channel })
            }
            Rule::record_decl => {
                let mut kids = Self::kids(pair);
                let name = self.ident(kids.next().expect("grammar: record name"));
                let fields = kids.map(|p| self.field(p)).collect();
                ItemKind::Record(RecordDecl { name, fields })
            }
            Rule::event_decl => {
                let mut name = None;
                let mut wire_name = None;
                let mut fields = Vec::new();
                for kid in Self::kids(pair) {
                    match kid.as_rule() {
                        Rule::ident => name = Some(self.ident(kid)),
                        Rule::string => wire_name = Some(self.string(kid)),
                        Rule::event_fields => {
                            fields = kid.into_inner().map(|p| self.field(p)).collect()
                        }
                        _ => {}
                    }
                }
                ItemKind::Event(EventDecl {
                    name: name.expect("grammar: event name"),
                    wire_name,
                    fields,
                })
            }
            Rule::tag_decl => {
                let mut kids = Self::kids(pair);
                let name = self.ident(kids.next().expect("grammar: tag name"));
                let description = kids.next().map(|p| self.string(p));
                ItemKind::Tag(TagDecl { name, description })
            }
            Rule::segment_decl => {
                let mut name = None;
                let mut description = None;
                let mut condition = None;
                for kid in Self::kids(pair) {
                    match kid.as_rule() {
                        Rule::ident => name = Some(self.ident(kid)),
                        Rule::string => description = Some(self.string(kid)),
                        _ => condition = Some(self.expr(kid)),
                    }
                }
                ItemKind::Segment(SegmentDecl {
                    name: name.expect("grammar: segment name"),
                    description,
                    condition: condition.expect("grammar: segment condition"),
                })
            }
            Rule::score_decl => {
                let mut name = None;
                let mut description = None;
                let mut rules = Vec::new();
                for kid in Self::kids(pair) {
                    match kid.as_rule() {
                        Rule::ident => name = Some(self.ident(kid)),
                        Rule::string => description = Some(self.string(kid)),
                        _ => rules.push(self.score_rule(kid)),
                    }
                }
                ItemKind::Score(ScoreDecl {
                    name: name.expect("grammar: score name"),
                    description,
                    rules,
                })
            }
            Rule::template_decl => {
                let mut name = None;
                let mut chan = None;
                let mut transactional = false;
                let mut props = Vec::new();
                for kid in Self::kids(pair) {
                    match kid.as_rule() {
                        Rule::ident => name = Some(self.ident(kid)),
                        Rule::channel => chan = Some(channel(&kid)),
                        Rule::transactional => transactional = true,
                        _ => props.push(self.template_prop(kid)),
                    }
                }
                ItemKind::Template(TemplateDecl {
                    name: name.expect("grammar: template name"),
                    channel: chan.expect("grammar: template channel"),
                    transactional,
                    props,
                })
            }
            Rule::quiet_hours => ItemKind::QuietHours(self.quiet_hours(pair)),
            Rule::frequency_cap => ItemKind::FrequencyCap(self.frequency_cap(pair)),
            Rule::journey_decl => {
                let mut name = None;
                let mut description = None;
                let mut members = Vec::new();
                for kid in Self::kids(pair) {
                    match kid.as_rule() {
                        Rule::ident => name = Some(self.ident(kid)),
                        Rule::string => description = Some(self.string(kid)),
                        _ => members.push(self.member(kid)),
                    }
                }
                ItemKind::Journey(JourneyDecl {
                    name: name.expect("grammar: journey name"),
                    description,
                    members,
                })
            }
            Rule::test_decl => {
                let mut kids = Self::kids(pair);
                let name = self.string(kids.next().expect("grammar: test name"));
                let statements = kids.map(|p| self.test_stmt(p)).collect();
                ItemKind::Test(TestDecl { name, statements })
            }
            _ => ItemKind::Error,
        }
    }

    fn field(&mut self, pair: Pair<Rule>) -> Field {
        let span = self.span(&pair);
        let mut kids = pair.into_inner();
        let name = self.ident(kids.next().expect("grammar: field name"));
        let ty = self.type_expr(kids.next().expect("grammar: field type"));
        let default = kids.next().map(|p| self.expr(p));
        Field {
            name,
            ty,
            default,
            span,
        }
    }

    fn type_expr(&mut self, pair: Pair<Rule>) -> TypeExpr {
        let span = self.span(&pair);
        let mut kids = pair.into_inner();
        let base = kids.next().expect("grammar: base type");
        let optional = kids.next().is_some();
        let kind = match base.as_rule() {
            Rule::enum_type => TypeKind::Enum(Self::kids(base).map(|p| self.ident(p)).collect()),
            Rule::list_type => TypeKind::List(Box::new(
                self.type_expr(Self::kids(base).next().expect("grammar: list element type")),
            )),
            _ => TypeKind::Named(self.ident(base)),
        };
        TypeExpr {
            kind,
            optional,
            span,
        }
    }

    fn score_rule(&mut self, pair: Pair<Rule>) -> ScoreRule {
        let span = self.span(&pair);
        let kind = if pair.as_rule() == Rule::score_on {
            let mut kids = Self::kids(pair);
            let points = self.signed_number(kids.next().expect("grammar: points"));
            let event = self.ident(kids.next().expect("grammar: score event"));
            let filter = kids.next().map(|p| self.expr(p));
            ScoreRuleKind::On {
                points,
                event,
                filter,
            }
        } else {
            let mut kids = Self::kids(pair);
            let percent = self.percent(kids.next().expect("grammar: decay percent"));
            let every = self.duration(kids.next().expect("grammar: decay period"));
            ScoreRuleKind::Decay { percent, every }
        };
        ScoreRule { kind, span }
    }

    fn template_prop(&mut self, pair: Pair<Rule>) -> TemplateProp {
        let span = self.span(&pair);
        let mut name = None;
        let mut from_file = false;
        let mut value = None;
        for kid in pair.into_inner() {
            match kid.as_rule() {
                Rule::ident => name = Some(self.ident(kid)),
                Rule::from_file => from_file = true,
                _ => value = Some(self.string(kid)),
            }
        }
        TemplateProp {
            name: name.expect("grammar: template field name"),
            from_file,
            value: value.expect("grammar: template field value"),
            span,
        }
    }

    fn quiet_hours(&mut self, pair: Pair<Rule>) -> QuietHours {
        let mut kids = Self::kids(pair);
        let from = self.time(kids.next().expect("grammar: quiet from"));
        let to = self.time(kids.next().expect("grammar: quiet to"));
        QuietHours { from, to }
    }

    fn frequency_cap(&mut self, pair: Pair<Rule>) -> FrequencyCap {
        let mut limit = 0;
        let mut scope = CapScope::Marketing;
        let mut per = None;
        let mut action = CapAction::Defer;
        for kid in Self::kids(pair) {
            match kid.as_rule() {
                Rule::integer => limit = self.integer(&kid),
                Rule::cap_scope => {
                    scope = match kid.into_inner().next() {
                        Some(c) if c.as_rule() == Rule::channel => CapScope::Channel(channel(&c)),
                        _ => CapScope::Marketing,
                    }
                }
                Rule::cap_action => {
                    action = if Self::has_keyword(&kid, Rule::K_SKIP) {
                        CapAction::Skip
                    } else {
                        CapAction::Defer
                    }
                }
                _ => per = Some(self.duration(kid)),
            }
        }
        FrequencyCap {
            limit,
            scope,
            per: per.expect("grammar: cap period"),
            action,
        }
    }

    fn member(&mut self, pair: Pair<Rule>) -> Member {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::trigger => MemberKind::Trigger(Box::new(
                self.trigger(Self::kids(pair).next().expect("grammar: trigger kind")),
            )),
            Rule::audience_opt => {
                MemberKind::Audience(self.expr(Self::kids(pair).next().expect("grammar: audience")))
            }
            Rule::reenter_opt => {
                let always = Self::has_keyword(&pair, Rule::K_ALWAYS);
                let never = Self::has_keyword(&pair, Rule::K_NEVER);
                MemberKind::Reenter(match Self::kids(pair).next() {
                    Some(d) => Reenter::After(self.duration(d)),
                    None if always => Reenter::Always,
                    None if never => Reenter::Never,
                    None => Reenter::Never,
                })
            }
            Rule::goal_opt => {
                let mut event = None;
                let mut filter = None;
                let mut within = None;
                for kid in Self::kids(pair) {
                    match kid.as_rule() {
                        Rule::ident => event = Some(self.ident(kid)),
                        Rule::expr => filter = Some(self.expr(kid)),
                        _ => within = Some(self.duration(kid)),
                    }
                }
                MemberKind::Goal(GoalOpt {
                    event: event.expect("grammar: goal event"),
                    filter,
                    within,
                })
            }
            Rule::exit_opt => {
                let mut kids = Self::kids(pair);
                let event = self.ident(kids.next().expect("grammar: exit event"));
                let filter = kids.next().map(|p| self.expr(p));
                MemberKind::Exit(ExitOpt { event, filter })
            }
            Rule::quiet_hours => MemberKind::QuietHours(self.quiet_hours(pair)),
            Rule::frequency_cap => MemberKind::FrequencyCap(self.frequency_cap(pair)),
            Rule::migrate_opt => {
                let mut kids = Self::kids(pair);
                let from = kids.next().expect("grammar: migrate from");
                let from = if from.as_rule() == Rule::string {
                    MigrateFrom::Id(self.string(from))
                } else {
                    MigrateFrom::Label(self.ident(from))
                };
                let to = self.ident(kids.next().expect("grammar: migrate to"));
                MemberKind::Migrate { from, to }
            }
            Rule::drain_opt => MemberKind::Drain,
            _ => MemberKind::Step(self.step(pair)),
        };
        Member { kind, span }
    }

    fn trigger(&mut self, pair: Pair<Rule>) -> Trigger {
        match pair.as_rule() {
            Rule::trig_event => {
                let mut event = None;
                let mut binding = None;
                let mut filter = None;
                let mut unless = None;
                for kid in Self::kids(pair) {
                    match kid.as_rule() {
                        Rule::ident if event.is_none() => event = Some(self.ident(kid)),
                        Rule::ident => binding = Some(self.ident(kid)),
                        Rule::expr => filter = Some(self.expr(kid)),
                        _ => {
                            let span = self.span(&kid);
                            let mut u_event = None;
                            let mut u_filter = None;
                            let mut within = None;
                            for k in Self::kids(kid) {
                                match k.as_rule() {
                                    Rule::ident => u_event = Some(self.ident(k)),
                                    Rule::expr => u_filter = Some(self.expr(k)),
                                    _ => within = Some(self.duration(k)),
                                }
                            }
                            unless = Some(Unless {
                                event: u_event.expect("grammar: unless event"),
                                filter: u_filter,
                                within: within.expect("grammar: unless window"),
                                span,
                            });
                        }
                    }
                }
                Trigger::Event {
                    event: event.expect("grammar: trigger event"),
                    binding,
                    filter,
                    unless,
                }
            }
            Rule::trig_anniversary => {
                let mut kids = Self::kids(pair);
                let field = self.path(kids.next().expect("grammar: anniversary field"));
                let at = self.time(kids.next().expect("grammar: anniversary time"));
                Trigger::Anniversary { field, at }
            }
            Rule::trig_inactive => {
                let mut kids = Self::kids(pair);
                let event = self.ident(kids.next().expect("grammar: inactive event"));
                let for_ = self.duration(kids.next().expect("grammar: inactive duration"));
                Trigger::Inactive { event, for_ }
            }
            Rule::trig_segment => {
                let enters = Self::has_keyword(&pair, Rule::K_ENTERS);
                let segment = self.ident(Self::kids(pair).next().expect("grammar: segment name"));
                Trigger::Segment { enters, segment }
            }
            Rule::trig_tag => {
                let added = Self::has_keyword(&pair, Rule::K_ADDED);
                let tag = self.ident(Self::kids(pair).next().expect("grammar: tag name"));
                Trigger::Tag { tag, added }
            }
            Rule::trig_page => Trigger::Page {
                pattern: self.string(Self::kids(pair).next().expect("grammar: page pattern")),
            },
            Rule::trig_created => Trigger::ContactCreated,
            _ => Trigger::ConsentGranted {
                consent: self.ident(Self::kids(pair).next().expect("grammar: consent name")),
            },
        }
    }

    fn block(&mut self, pair: Pair<Rule>) -> Block {
        let span = self.span(&pair);
        Block {
            steps: pair.into_inner().map(|p| self.step(p)).collect(),
            span,
        }
    }

    fn step(&mut self, pair: Pair<Rule>) -> Step {
        let span = self.span(&pair);
        let mut label = None;
        let mut kind = None;
        for kid in pair.into_inner() {
            if kid.as_rule() == Rule::label {
                label = Some(self.ident(kid));
            } else {
                kind = Some(self.step_kind(kid));
            }
        }
        Step {
            label,
            kind: kind.expect("grammar: step kind"),
            span,
        }
    }

    fn step_kind(&mut self, pair: Pair<Rule>) -> StepKind {
        match pair.as_rule() {
            Rule::send_step => {
                let mut target = None;
                let mut best_time = false;
                let mut chan = None;
                for kid in Self::kids(pair) {
                    match kid.as_rule() {
                        Rule::channel => chan = Some(channel(&kid)),
                        Rule::ident => {
                            target = Some(SendTarget::Channel {
                                channel: chan.unwrap_or(Channel::Email),
                                template: self.ident(kid),
                            })
                        }
                        Rule::preferred_channel => {
                            target = Some(SendTarget::Preferred(
                                Self::kids(kid).map(|p| self.ident(p)).collect(),
                            ))
                        }
                        _ => best_time = true,
                    }
                }
                StepKind::Send(Send {
                    target: target.expect("grammar: send target"),
                    best_time,
                })
            }
            Rule::post_step => {
                let mut kids = Self::kids(pair);
                let url = self.string(kids.next().expect("grammar: post url"));
                let body = kids.next().map(|p| self.object(p));
                StepKind::Post { url, body }
            }
            Rule::wait_step => StepKind::Wait(
                self.duration(Self::kids(pair).next().expect("grammar: wait duration")),
            ),
            Rule::wait_until_step => {
                let mut kids = Self::kids(pair);
                let from = self.time(kids.next().expect("grammar: wait until time"));
                let to = kids.next().map(|p| self.time(p));
                StepKind::WaitUntil { from, to }
            }
            Rule::wait_for_step => {
                let mut event = None;
                let mut binding = None;
                let mut filter = None;
                let mut within = None;
                let mut then = None;
                let mut timeout = None;
                for kid in Self::kids(pair) {
                    match kid.as_rule() {
                        Rule::ident if event.is_none() => event = Some(self.ident(kid)),
                        Rule::ident => binding = Some(self.ident(kid)),
                        Rule::expr => filter = Some(self.expr(kid)),
                        Rule::block => then = Some(self.block(kid)),
                        Rule::timeout_branch => {
                            timeout = Some(
                                self.block(Self::kids(kid).next().expect("grammar: timeout block")),
                            )
                        }
                        _ => within = Some(self.duration(kid)),
                    }
                }
                StepKind::WaitFor(Box::new(WaitFor {
                    event: event.expect("grammar: wait for event"),
                    binding,
                    filter,
                    within,
                    then: then.expect("grammar: wait for block"),
                    timeout,
                }))
            }
            Rule::if_step => StepKind::If(Box::new(self.if_step(pair))),
            Rule::split_step => {
                StepKind::Split(Self::kids(pair).map(|p| self.split_arm(p)).collect())
            }
            Rule::tag_step => {
                let add = Self::has_keyword(&pair, Rule::K_ADD);
                let tag = self.ident(Self::kids(pair).next().expect("grammar: tag"));
                StepKind::Tag { add, tag }
            }
            Rule::score_step => {
                let mut kids = Self::kids(pair);
                let score = self.ident(kids.next().expect("grammar: score"));
                let delta = self.signed_number(kids.next().expect("grammar: score delta"));
                StepKind::Score { score, delta }
            }
            Rule::set_step => {
                let mut kids = Self::kids(pair);
                let target = self.path(kids.next().expect("grammar: set target"));
                let value = self.expr(kids.next().expect("grammar: set value"));
                StepKind::Set { target, value }
            }
            Rule::retry_step => {
                let mut kids = Self::kids(pair);
                let target = self.ident(kids.next().expect("grammar: retry target"));
                let times = self.integer(&kids.next().expect("grammar: retry count"));
                StepKind::Retry { target, times }
            }
            Rule::goal_step => StepKind::Goal,
            _ => StepKind::Exit,
        }
    }

    fn if_step(&mut self, pair: Pair<Rule>) -> IfStep {
        let mut kids = Self::kids(pair);
        let condition = self.expr(kids.next().expect("grammar: if condition"));
        let then = self.block(kids.next().expect("grammar: if block"));
        let otherwise = kids.next().map(|else_pair| {
            let inner = Self::kids(else_pair).next().expect("grammar: else body");
            if inner.as_rule() == Rule::if_step {
                let span = self.span(&inner);
                Else::If(Box::new(self.if_step(inner)), span)
            } else {
                Else::Block(self.block(inner))
            }
        });
        IfStep {
            condition,
            then,
            otherwise,
        }
    }

    fn split_arm(&mut self, pair: Pair<Rule>) -> SplitArm {
        let span = self.span(&pair);
        let mut kids = pair.into_inner();
        let weight = self.percent(kids.next().expect("grammar: arm weight"));
        let name = self.ident(kids.next().expect("grammar: arm name"));
        let body_pair = kids.next().expect("grammar: arm body");
        let body = if body_pair.as_rule() == Rule::block {
            ArmBody::Block(self.block(body_pair))
        } else {
            let step_span = self.span(&body_pair);
            ArmBody::Step(Box::new(Step {
                label: None,
                kind: self.step_kind(body_pair),
                span: step_span,
            }))
        };
        SplitArm {
            weight,
            name,
            body,
            span,
        }
    }

    fn test_stmt(&mut self, pair: Pair<Rule>) -> TestStmt {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::test_contact => {
                let mut kids = Self::kids(pair);
                let name = self.ident(kids.next().expect("grammar: test contact name"));
                let fields = self.object(kids.next().expect("grammar: test contact fields"));
                TestStmtKind::Contact { name, fields }
            }
            Rule::test_input => {
                let mut kids = Self::kids(pair);
                let at = self.datetime(kids.next().expect("grammar: input time"));
                let contact = self.ident(kids.next().expect("grammar: input contact"));
                let action = self.test_action(kids.next().expect("grammar: input action"));
                TestStmtKind::Input {
                    at,
                    contact,
                    action,
                }
            }
            _ => {
                let mut negated = false;
                let mut expectation = None;
                for kid in Self::kids(pair) {
                    if kid.as_rule() == Rule::negated {
                        negated = true;
                    } else {
                        expectation = Some(self.expectation(kid));
                    }
                }
                TestStmtKind::Expect {
                    negated,
                    expectation: expectation.expect("grammar: expectation"),
                }
            }
        };
        TestStmt { kind, span }
    }

    fn test_action(&mut self, pair: Pair<Rule>) -> TestAction {
        match pair.as_rule() {
            Rule::in_sends => {
                let mut kids = Self::kids(pair);
                let event = self.ident(kids.next().expect("grammar: sent event"));
                let payload = kids.next().map(|p| self.object(p));
                TestAction::Sends { event, payload }
            }
            Rule::in_updates => {
                TestAction::Updates(self.object(Self::kids(pair).next().expect("grammar: traits")))
            }
            Rule::in_opens => TestAction::Opens(
                self.step_ref(Self::kids(pair).next().expect("grammar: opened step")),
            ),
            Rule::in_clicks => {
                let mut kids = Self::kids(pair);
                let step = self.step_ref(kids.next().expect("grammar: clicked step"));
                let url = kids.next().map(|p| self.string(p));
                TestAction::Clicks { step, url }
            }
            Rule::in_unsubscribes => {
                let scope = Self::kids(pair)
                    .next()
                    .and_then(|s| s.into_inner().find(|p| p.as_rule() == Rule::channel))
                    .map_or(UnsubscribeScope::All, |c| {
                        UnsubscribeScope::Channel(channel(&c))
                    });
                TestAction::Unsubscribes(scope)
            }
            Rule::in_visits => TestAction::Visits(
                self.string(Self::kids(pair).next().expect("grammar: visited url")),
            ),
            _ => TestAction::Grants(
                self.ident(Self::kids(pair).next().expect("grammar: granted consent")),
            ),
        }
    }

    fn expectation(&mut self, pair: Pair<Rule>) -> Expectation {
        let rule = pair.as_rule();
        let added = Self::has_keyword(&pair, Rule::K_ADDED);
        let mut idents = Vec::new();
        let mut step = None;
        let mut time = None;
        let mut what = None;
        let mut chan = None;
        let mut datetime = None;
        let mut number = None;
        for kid in Self::kids(pair) {
            match kid.as_rule() {
                Rule::ident => idents.push(self.ident(kid)),
                Rule::step_ref => step = Some(self.step_ref(kid)),
                Rule::time_clause => time = Some(self.time_clause(kid)),
                Rule::channel => chan = Some(channel(&kid)),
                Rule::template_choice => {
                    let templates = kid.into_inner().map(|p| self.ident(p)).collect();
                    what = Some((chan.unwrap_or(Channel::Email), templates));
                }
                Rule::datetime => datetime = Some(self.datetime(kid)),
                _ => number = Some(self.number(&kid)),
            }
        }
        let mut idents = idents.into_iter();
        match rule {
            Rule::exp_send => Expectation::Send {
                what,
                contact: take(&mut idents),
                time,
            },
            Rule::exp_split => {
                let contact = take(&mut idents);
                Expectation::Split {
                    step: step.expect("grammar: split step"),
                    contact,
                    arm: idents.next(),
                    time,
                }
            }
            Rule::exp_tag => Expectation::Tag {
                tag: take(&mut idents),
                added,
                contact: take(&mut idents),
                time,
            },
            Rule::exp_score => Expectation::Score {
                score: take(&mut idents),
                contact: take(&mut idents),
                value: number.expect("grammar: score value"),
                time,
            },
            Rule::exp_goal => Expectation::Goal {
                journey: take(&mut idents),
                contact: take(&mut idents),
                time,
            },
            Rule::exp_exit => {
                let journey = take(&mut idents);
                let contact = take(&mut idents);
                Expectation::Exit {
                    journey,
                    contact,
                    reason: idents.next(),
                    time,
                }
            }
            Rule::exp_skip => {
                let contact = take(&mut idents);
                Expectation::Skip {
                    step: step.expect("grammar: skip step"),
                    contact,
                    reason: idents.next(),
                    time,
                }
            }
            Rule::exp_defer => Expectation::Defer {
                step: step.expect("grammar: defer step"),
                contact: take(&mut idents),
                time,
            },
            Rule::exp_enter => Expectation::Enter {
                journey: take(&mut idents),
                contact: take(&mut idents),
                time,
            },
            _ => Expectation::Nothing {
                contact: take(&mut idents),
                until: datetime.expect("grammar: nothing until"),
            },
        }
    }

    fn time_clause(&mut self, pair: Pair<Rule>) -> TimeClause {
        let until = Self::has_keyword(&pair, Rule::K_UNTIL);
        let at = self.datetime(Self::kids(pair).next().expect("grammar: clause time"));
        TimeClause { until, at }
    }

    fn step_ref(&mut self, pair: Pair<Rule>) -> StepRef {
        let span = self.span(&pair);
        let mut names: Vec<Ident> = pair.into_inner().map(|p| self.ident(p)).collect();
        let step = names.pop().expect("grammar: step name");
        StepRef {
            journey: names.pop(),
            step,
            span,
        }
    }

    fn object(&mut self, pair: Pair<Rule>) -> Vec<ObjectEntry> {
        pair.into_inner()
            .map(|entry| {
                let span = self.span(&entry);
                let mut kids = entry.into_inner();
                let key = self.ident(kids.next().expect("grammar: object key"));
                let value = self.expr(kids.next().expect("grammar: object value"));
                ObjectEntry { key, value, span }
            })
            .collect()
    }

    fn path(&mut self, pair: Pair<Rule>) -> Path {
        let span = self.span(&pair);
        Path {
            segments: pair.into_inner().map(|p| self.ident(p)).collect(),
            span,
        }
    }

    // -------------------------------------------------------------- expressions

    fn expr(&mut self, pair: Pair<Rule>) -> Expr {
        let span = self.span(&pair);
        let operators = pair.clone().into_inner().count() / 2;
        if operators > MAX_OPERATORS {
            self.diagnostics.push(
                Diagnostic::error(
                    codes::TOO_DEEP,
                    format!("this expression chains more than {MAX_OPERATORS} operators"),
                )
                .with_label(span, "too long")
                .with_help("split it into named segments and combine those"),
            );
            return Expr {
                kind: ExprKind::Literal(Literal::Bool(false)),
                span,
            };
        }
        // Flatten `term`s into the operand / operator stream the Pratt parser reads.
        let mut stream = Vec::new();
        for kid in pair.into_inner() {
            if kid.as_rule() == Rule::term {
                let term_span = self.span(&kid);
                let prefixes = kid
                    .clone()
                    .into_inner()
                    .take_while(|p| matches!(p.as_rule(), Rule::op_not | Rule::op_neg))
                    .count();
                if prefixes > MAX_NESTING {
                    self.diagnostics.push(
                        Diagnostic::error(
                            codes::TOO_DEEP,
                            format!("more than {MAX_NESTING} prefix operators in a row"),
                        )
                        .with_label(term_span, "too deep"),
                    );
                    return Expr {
                        kind: ExprKind::Literal(Literal::Bool(false)),
                        span,
                    };
                }
                stream.extend(kid.into_inner());
            } else {
                stream.push(kid);
            }
        }
        // The Pratt closures each need the builder; a RefCell shares it between them.
        let cell = std::cell::RefCell::new(&mut *self);
        PRATT
            .map_primary(|p| cell.borrow_mut().primary(p))
            .map_prefix(|op, rhs| {
                let b = cell.borrow();
                let span = b.span(&op).cover(rhs.span);
                let unary = if op.as_rule() == Rule::op_not {
                    UnaryOp::Not
                } else {
                    UnaryOp::Neg
                };
                Expr {
                    kind: ExprKind::Unary(unary, Box::new(rhs)),
                    span,
                }
            })
            .map_postfix(|lhs, op| {
                let b = cell.borrow();
                let span = lhs.span.cover(b.span(&op));
                let kind = match op.as_rule() {
                    Rule::member => ExprKind::Member(
                        Box::new(lhs),
                        b.ident(op.into_inner().next().expect("grammar: member name")),
                    ),
                    Rule::is_set => ExprKind::IsSet {
                        expr: Box::new(lhs),
                        negated: false,
                    },
                    _ => ExprKind::IsSet {
                        expr: Box::new(lhs),
                        negated: true,
                    },
                };
                Expr { kind, span }
            })
            .map_infix(|lhs, op, rhs| {
                let span = lhs.span.cover(rhs.span);
                let binary = match op.as_rule() {
                    Rule::op_or => BinaryOp::Or,
                    Rule::op_and => BinaryOp::And,
                    Rule::op_eq => BinaryOp::Eq,
                    Rule::op_ne => BinaryOp::Ne,
                    Rule::op_lt => BinaryOp::Lt,
                    Rule::op_le => BinaryOp::Le,
                    Rule::op_gt => BinaryOp::Gt,
                    Rule::op_ge => BinaryOp::Ge,
                    Rule::op_in => BinaryOp::In,
                    Rule::op_not_in => BinaryOp::NotIn,
                    Rule::op_add => BinaryOp::Add,
                    Rule::op_sub => BinaryOp::Sub,
                    Rule::op_mul => BinaryOp::Mul,
                    _ => BinaryOp::Div,
                };
                Expr {
                    kind: ExprKind::Binary(binary, Box::new(lhs), Box::new(rhs)),
                    span,
                }
            })
            .parse(stream.into_iter())
    }

    fn primary(&mut self, pair: Pair<Rule>) -> Expr {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::ident => ExprKind::Name(self.ident(pair)),
            Rule::paren => ExprKind::Paren(Box::new(
                self.expr(pair.into_inner().next().expect("grammar: paren")),
            )),
            Rule::call => {
                let mut kids = pair.into_inner();
                let function = self.ident(kids.next().expect("grammar: function name"));
                let args = kids
                    .map(|arg| {
                        let arg_span = self.span(&arg);
                        let mut value = None;
                        let mut filter = None;
                        let mut within = None;
                        for k in Self::kids(arg) {
                            match k.as_rule() {
                                Rule::expr if value.is_none() => value = Some(self.expr(k)),
                                Rule::expr => filter = Some(self.expr(k)),
                                _ => within = Some(self.duration(k)),
                            }
                        }
                        CallArg {
                            value: value.expect("grammar: argument"),
                            filter,
                            within,
                            span: arg_span,
                        }
                    })
                    .collect();
                ExprKind::Call(Call { function, args })
            }
            Rule::list_lit => ExprKind::List(pair.into_inner().map(|p| self.expr(p)).collect()),
            Rule::object => ExprKind::Object(self.object(pair)),
            _ => ExprKind::Literal(self.literal(pair)),
        };
        Expr { kind, span }
    }

    fn literal(&mut self, pair: Pair<Rule>) -> Literal {
        match pair.as_rule() {
            Rule::datetime => Literal::DateTime(self.datetime(pair)),
            Rule::date => Literal::Date(self.date(&pair)),
            Rule::time => Literal::Time(self.time(pair)),
            Rule::money => {
                let text = pair.as_str();
                let amount: String = text
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.')
                    .collect();
                let currency = text[amount.len()..].trim().to_string();
                Literal::Money(Money {
                    amount: Number { text: amount },
                    currency,
                })
            }
            Rule::percent => Literal::Percent(self.percent(pair)),
            Rule::number => Literal::Number(self.number(&pair)),
            Rule::string => Literal::String(self.string(pair)),
            Rule::boolean => Literal::Bool(Self::has_keyword(&pair, Rule::K_TRUE)),
            _ => Literal::Duration(self.duration(pair)),
        }
    }

    fn string(&mut self, pair: Pair<Rule>) -> StringLit {
        let span = self.span(&pair);
        let inner = pair.into_inner().next().expect("grammar: string kind");
        let triple = inner.as_rule() == Rule::triple_string;
        let body = inner.into_inner().next().map_or("", |b| b.as_str());
        let value = if triple {
            body.to_string()
        } else {
            self.unescape(body, span.start + 1)
        };
        StringLit {
            value,
            triple,
            span,
        }
    }

    fn unescape(&mut self, body: &str, body_start: usize) -> String {
        if !body.contains('\\') {
            return body.to_string();
        }
        let mut out = String::with_capacity(body.len());
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, '"')) => out.push('"'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, other)) => {
                    let at = body_start + i;
                    self.diagnostics.push(
                        Diagnostic::error(
                            codes::INVALID_LITERAL,
                            format!("unknown escape `\\{other}` in a string"),
                        )
                        .with_label(Span::new(at, at + 1 + other.len_utf8()), "unknown escape")
                        .with_help("the escapes are `\\\"`, `\\\\`, `\\n` and `\\t`"),
                    );
                    out.push(other);
                }
                None => {}
            }
        }
        out
    }

    fn number(&self, pair: &Pair<Rule>) -> Number {
        Number {
            text: pair.as_str().to_string(),
        }
    }

    fn signed_number(&self, pair: Pair<Rule>) -> SignedNumber {
        let span = self.span(&pair);
        let text = pair.as_str();
        SignedNumber {
            negative: text.starts_with('-'),
            magnitude: Number {
                text: text[1..].to_string(),
            },
            span,
        }
    }

    fn percent(&self, pair: Pair<Rule>) -> Percent {
        let span = self.span(&pair);
        Percent {
            value: Number {
                text: pair.as_str().trim_end_matches('%').to_string(),
            },
            span,
        }
    }

    fn integer(&mut self, pair: &Pair<Rule>) -> u32 {
        match pair.as_str().parse() {
            Ok(n) => n,
            Err(_) => {
                let span = self.span(pair);
                self.diagnostics.push(
                    Diagnostic::error(codes::INVALID_LITERAL, "this number is too large")
                        .with_label(span, format!("at most {}", u32::MAX)),
                );
                0
            }
        }
    }

    fn duration(&mut self, pair: Pair<Rule>) -> DurationLit {
        let span = self.span(&pair);
        let text = pair.as_str();
        let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
        let unit_text = text[digits.len()..].trim();
        let unit = duration_unit(unit_text);
        let value = digits.parse::<u64>().ok().filter(|v| *v <= 1_000_000_000);
        match (unit, value) {
            (Some(unit), Some(value)) => DurationLit { value, unit, span },
            (None, _) => {
                let unit_at = span.start + digits.len();
                let mut diagnostic = Diagnostic::error(
                    codes::INVALID_LITERAL,
                    format!("unknown duration unit `{unit_text}`"),
                )
                .with_label(Span::new(unit_at, span.end), "not a unit")
                .with_help("use `s`, `m`, `h`, `d` or `w` for exact time, `months` or `years` for calendar time");
                if unit_text == "mo" || unit_text == "mon" {
                    diagnostic = diagnostic
                        .with_help(format!("write `{digits} months` for calendar months"));
                }
                self.diagnostics.push(diagnostic);
                // A placeholder that no later check mistakes for a zero duration.
                DurationLit {
                    value: 1,
                    unit: DurationUnit::Seconds,
                    span,
                }
            }
            (Some(unit), None) => {
                self.diagnostics.push(
                    Diagnostic::error(codes::INVALID_LITERAL, "this duration is too long")
                        .with_label(span, "at most 1000000000 units"),
                );
                DurationLit {
                    value: 0,
                    unit,
                    span,
                }
            }
        }
    }

    fn time(&mut self, pair: Pair<Rule>) -> TimeLit {
        let span = self.span(&pair);
        let text = pair.as_str();
        let hour: u8 = text[..2].parse().unwrap_or(99);
        let minute: u8 = text[3..5].parse().unwrap_or(99);
        if hour > 23 || minute > 59 {
            self.diagnostics.push(
                Diagnostic::error(
                    codes::INVALID_LITERAL,
                    format!("`{text}` is not a time of day"),
                )
                .with_label(span, "hours run 00-23, minutes 00-59")
                .with_help("times of day are written `HH:MM`, from `00:00` to `23:59`"),
            );
        }
        TimeLit { hour, minute, span }
    }

    fn date(&mut self, pair: &Pair<Rule>) -> DateLit {
        let span = self.span(pair);
        let text = pair.as_str();
        let (year, month, day) = self.check_date(&text[..10], span);
        DateLit {
            year,
            month,
            day,
            span,
        }
    }

    fn check_date(&mut self, text: &str, span: Span) -> (u16, u8, u8) {
        let year: u16 = text[..4].parse().unwrap_or(0);
        let month: u8 = text[5..7].parse().unwrap_or(0);
        let day: u8 = text[8..10].parse().unwrap_or(0);
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            self.diagnostics.push(
                Diagnostic::error(
                    codes::INVALID_LITERAL,
                    format!("`{text}` is not a calendar date"),
                )
                .with_label(Span::new(span.start, span.start + 10), "no such day")
                .with_help("dates are `YYYY-MM-DD`"),
            );
        }
        (year, month, day)
    }

    fn datetime(&mut self, pair: Pair<Rule>) -> DateTimeLit {
        let span = self.span(&pair);
        let text = pair.as_str();
        self.check_date(&text[..10], span);
        let hour: u8 = text[11..13].parse().unwrap_or(99);
        let minute: u8 = text[14..16].parse().unwrap_or(99);
        let second: u8 = if text.as_bytes().get(16) == Some(&b':') {
            text[17..19].parse().unwrap_or(99)
        } else {
            0
        };
        if hour > 23 || minute > 59 || second > 59 {
            self.diagnostics.push(
                Diagnostic::error(
                    codes::INVALID_LITERAL,
                    format!("`{text}` has no such time of day"),
                )
                .with_label(
                    Span::new(span.start + 11, span.end),
                    "hours run 00-23, minutes and seconds 00-59",
                ),
            );
        }
        DateTimeLit {
            text: text.to_string(),
            span,
        }
    }
}

fn take(names: &mut impl Iterator<Item = Ident>) -> Ident {
    names.next().expect("grammar: expectation name")
}

fn channel(pair: &Pair<Rule>) -> Channel {
    let inner = pair.clone().into_inner().next().map(|p| p.as_rule());
    match inner {
        Some(Rule::K_SMS) => Channel::Sms,
        Some(Rule::K_PUSH) => Channel::Push,
        _ => Channel::Email,
    }
}

/// The unit a duration literal names after its number (`d`, `day`, `days` ...).
pub(crate) fn duration_unit(word: &str) -> Option<DurationUnit> {
    match word {
        "s" | "second" | "seconds" => Some(DurationUnit::Seconds),
        "m" | "minute" | "minutes" => Some(DurationUnit::Minutes),
        "h" | "hour" | "hours" => Some(DurationUnit::Hours),
        "d" | "day" | "days" => Some(DurationUnit::Days),
        "w" | "week" | "weeks" => Some(DurationUnit::Weeks),
        "month" | "months" => Some(DurationUnit::Months),
        "year" | "years" => Some(DurationUnit::Years),
        _ => None,
    }
}

/// Days in `month` (1 to 12) of `year`; 0 for any other month.
pub(crate) fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 0,
    }
}
