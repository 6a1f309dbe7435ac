//! Data-driven snapshot tests of the parser, in the style of rust-analyzer.
//!
//! - `data/ok/*.cairn` must parse without a single diagnostic. The snapshot holds the
//!   source and the `{:#?}` of the syntax tree.
//! - `data/err/*.cairn` hold one problem each. The snapshot holds the source, every
//!   diagnostic as a person reads it (code, message, `file:line:column`, the source line
//!   with its label, and help) and the list of items the parser recovered. A comment line
//!   `// next item parses` in an err file asserts that the item below it is not an error
//!   item, i.e. that the broken item above did not swallow it.
//!
//! Adding a case is adding a file. Review new snapshots with `cargo insta review`, or
//! run `INSTA_UPDATE=new cargo test -p cairn-grammar --test parser`, read every
//! `snapshots/*.snap.new` and rename it to `.snap` once the message points at the right
//! place and reads right to someone who writes journeys, not parsers.
//!
//! Inputs that are awkward as files (bytes that are not UTF-8, very large or very deep
//! inputs, random bytes) are generated in code further down.

// A test reports failure by panicking, so `unwrap` says "this cannot fail here" plainly.
#![allow(clippy::unwrap_used)]

use cairn_grammar::ast::{BinaryOp, ExprKind, ItemKind, SourceFile, Span};
use cairn_grammar::lines::LineIndex;
use cairn_grammar::{Diagnostic, Parsed, parse, parse_bytes};
use miette::{GraphicalReportHandler, GraphicalTheme, NamedSource};
use proptest::prelude::*;
use std::path::{Path, PathBuf};

/// The marker comment that makes an err file assert recovery of the item below it.
const NEXT_ITEM_PARSES: &str = "// next item parses";

// ------------------------------------------------------------------ data files

#[test]
fn ok() {
    insta::glob!("data/ok/*.cairn", |path| {
        let src = read(path);
        let parsed = parse(&src);
        assert!(
            parsed.diagnostics.is_empty(),
            "{} must parse without diagnostics, got:\n{}",
            path.display(),
            render_diagnostics(&file_name(path), &src, &parsed.diagnostics)
        );
        check_spans(&src, &parsed.file);
        insta::assert_snapshot!(format!(
            "----- SOURCE\n{src}\n----- AST\n{:#?}\n",
            parsed.file
        ));
    });
}

#[test]
fn err() {
    insta::glob!("data/err/*.cairn", |path| {
        let src = read(path);
        let parsed = parse(&src);
        assert!(
            parsed.has_errors(),
            "{} must give at least one error",
            path.display()
        );
        assert_diagnostics_in_bounds(&src, &parsed.diagnostics);
        assert_marked_items_parse(path, &src, &parsed.file);
        insta::assert_snapshot!(format!(
            "----- SOURCE\n{src}\n----- DIAGNOSTICS\n{}----- ITEMS\n{}",
            render_diagnostics(&file_name(path), &src, &parsed.diagnostics),
            item_outline(&src, &parsed.file)
        ));
    });
}

/// Enough err cases to cover the ways a file goes wrong; a guard against a glob that
/// silently matches nothing.
#[test]
fn data_files_are_found() {
    assert!(data_files("ok").len() >= 40, "too few ok files");
    assert!(data_files("err").len() >= 45, "too few err files");
}

fn data_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(kind)
}

fn data_files(kind: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data_dir(kind))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cairn"))
        .collect();
    files.sort();
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// Each diagnostic as the CLI shows it, without colour, 100 columns wide.
fn render_diagnostics(name: &str, src: &str, diagnostics: &[Diagnostic]) -> String {
    let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .with_links(false);
    let mut out = String::new();
    for diagnostic in diagnostics {
        let report = miette::Report::new(diagnostic.clone())
            .with_source_code(NamedSource::new(name, src.to_string()));
        handler.render_report(&mut out, report.as_ref()).unwrap();
        out.push('\n');
    }
    out
}

/// One line per item: where it is, what it is and, for a declaration, its name.
fn item_outline(src: &str, file: &SourceFile) -> String {
    let index = LineIndex::new(src);
    let mut out = String::new();
    for item in &file.items {
        let from = index.line_col(src, item.span.start);
        let to = index.line_col(src, item.span.end);
        let what = match &item.kind {
            ItemKind::Error => "ERROR".to_string(),
            kind => match kind.name() {
                Some(name) => format!("{} {}", kind.keyword(), name.name),
                None => kind.keyword().to_string(),
            },
        };
        out.push_str(&format!(
            "{}:{}-{}:{} {what}\n",
            from.line, from.column, to.line, to.column
        ));
    }
    out
}

fn assert_diagnostics_in_bounds(src: &str, diagnostics: &[Diagnostic]) {
    for d in diagnostics {
        assert!(!d.labels.is_empty(), "diagnostic without a location: {d:?}");
        for label in &d.labels {
            assert_span_in(src, label.span, &format!("label of {d:?}"));
        }
    }
}

fn assert_span_in(src: &str, span: Span, what: &str) {
    assert!(
        span.start <= span.end && span.end <= src.len(),
        "{what}: span {span:?} outside 0..{}",
        src.len()
    );
    assert!(
        src.is_char_boundary(span.start) && src.is_char_boundary(span.end),
        "{what}: span {span:?} splits a character"
    );
}

/// Items in source order, not overlapping, inside the file; every span in an item's
/// tree (relative to the item) inside the item, on character boundaries, neither
/// starting nor ending with a blank, and every name's span holding exactly that name.
fn check_spans(src: &str, file: &SourceFile) {
    let mut previous_end = 0;
    for item in &file.items {
        assert_span_in(src, item.span, "item");
        assert!(
            item.span.start >= previous_end,
            "item {:?} starts before the previous one ends ({previous_end})",
            item.span
        );
        previous_end = item.span.end;
        let item_text = &src[item.span.start..item.span.end];
        assert_eq!(
            item_text,
            item_text.trim(),
            "item span with blanks around it"
        );
        let tree = serde_json::to_value(&item.kind).unwrap();
        for_each_span(&tree, "", &mut |path, span, name| {
            assert!(
                span.end <= item.span.len(),
                "{path}: relative span {span:?} outside its item {:?}",
                item.span
            );
            let absolute = item.absolute(span);
            assert_span_in(src, absolute, path);
            let text = &src[absolute.start..absolute.end];
            assert!(!text.is_empty(), "{path}: empty span {absolute:?}");
            assert_eq!(
                text,
                text.trim(),
                "{path}: span starts or ends with a blank"
            );
            if let Some(name) = name {
                assert_eq!(text, name, "{path}: the span of a name");
            }
        });
    }
    for c in &file.comments {
        assert_span_in(src, c.span, "comment");
        assert_eq!(&src[c.span.start..c.span.end], c.text);
    }
}

/// Calls `f` with the JSON path, the span and, for an `Ident`, the name of every node of
/// a serialized tree that has a `span`.
fn for_each_span(
    value: &serde_json::Value,
    path: &str,
    f: &mut impl FnMut(&str, Span, Option<&str>),
) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Object(span)) = map.get("span") {
                let start = span.get("start").and_then(serde_json::Value::as_u64);
                let end = span.get("end").and_then(serde_json::Value::as_u64);
                if let (Some(start), Some(end)) = (start, end) {
                    // An `Ident` is exactly `{ name, span }`.
                    let name = (map.len() == 2)
                        .then(|| map.get("name").and_then(serde_json::Value::as_str))
                        .flatten();
                    f(path, Span::new(start as usize, end as usize), name);
                }
            }
            for (key, v) in map {
                for_each_span(v, &format!("{path}.{key}"), f);
            }
        }
        serde_json::Value::Array(values) => {
            for (i, v) in values.iter().enumerate() {
                for_each_span(v, &format!("{path}[{i}]"), f);
            }
        }
        _ => {}
    }
}

/// Every `// next item parses` comment is followed by an item that parsed.
fn assert_marked_items_parse(path: &Path, src: &str, file: &SourceFile) {
    for (at, _) in src.match_indices(NEXT_ITEM_PARSES) {
        let item = file.items.iter().find(|i| i.span.start > at);
        let line = LineIndex::new(src).line_col(src, at).line;
        match item {
            Some(item) => assert!(
                item.kind != ItemKind::Error,
                "{}:{line}: the item after the marker did not parse",
                path.display()
            ),
            None => panic!("{}:{line}: no item after the marker", path.display()),
        }
    }
}

// ------------------------------------------------------------------ generated inputs

/// One realistic journey, commented as people write them; `%N` makes each name unique.
const JOURNEY: &str = "/// Welcome series %N: greets new contacts, nudges them once and hands the
/// engaged ones over to the newsletter.
journey welcome_%N \"welcome series for new sign-ups\" {
  // who enters, and what counts as success
  when contact created
  audience consented(email_marketing) and contact.country in [\"PL\", \"DE\"]
  reenter never
  goal order_completed where total >= 50 EUR within 14d

  // first touch, at the hour they usually open
  hello: send email welcome at best time
  wait 2d
  if not opened(hello) {
    // no open after two days: try another channel
    send sms welcome_sms
  } else {
    tag add engaged
  }
  // half get a push, half another email a day later
  split {
    50% a: send push nudge
    50% b: { wait 1d; send email reminder }
  }
}
";

#[test]
fn empty_file() {
    for src in ["", "\n", "\n\n  \n", " \t \r\n", "// just a comment"] {
        let parsed = parse(src);
        assert!(parsed.file.items.is_empty(), "{src:?}: {:#?}", parsed.file);
        assert!(
            parsed.diagnostics.is_empty(),
            "{src:?}: {:?}",
            parsed.diagnostics
        );
    }
}

/// A byte order mark is blank to the grammar (`WHITESPACE`), and before an item it is
/// skipped, but the scanner counts it as text: a file holding only a BOM (or a BOM and
/// blank lines) becomes one error item, "expected an item, found the end of the file".
#[test]
fn bom_only_file_is_empty() {
    for src in ["\u{FEFF}", "\u{FEFF}\n\n"] {
        let parsed = parse(src);
        assert!(parsed.file.items.is_empty(), "{src:?}: {:#?}", parsed.file);
        assert!(
            parsed.diagnostics.is_empty(),
            "{src:?}: {:?}",
            parsed.diagnostics
        );
    }
}

#[test]
fn bom_before_an_item_is_skipped() {
    let parsed = parse("\u{FEFF}tag vip\n");
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    assert_eq!(parsed.file.items.len(), 1);
    assert_eq!(parsed.file.items[0].span, Span::new(3, 10));
}

#[test]
fn not_utf8() {
    let src = b"tag vip\njourney a {\n  when x\n  send email caf\xe9\n}\n";
    let parsed = parse_bytes(src);
    assert!(parsed.file.items.is_empty());
    assert_eq!(parsed.diagnostics.len(), 1);
    let d = &parsed.diagnostics[0];
    assert_eq!(d.code, "E0007");
    let at = src.iter().position(|&b| b == 0xe9).unwrap();
    assert_eq!(d.primary_span(), Some(Span::new(at, at + 1)));

    // Cut off in the middle of a character: the span is the dangling tail.
    let cut = "tag caf\u{e9}".as_bytes();
    let parsed = parse_bytes(&cut[..cut.len() - 1]);
    assert_eq!(parsed.diagnostics[0].code, "E0007");
    assert_eq!(parsed.diagnostics[0].primary_span(), Some(Span::new(7, 8)));

    // Valid UTF-8 through `parse_bytes` is the same as through `parse`.
    let shop = std::fs::read(data_dir("ok").join("shop.cairn")).unwrap();
    let via_bytes = parse_bytes(&shop);
    assert!(via_bytes.diagnostics.is_empty());
    assert_eq!(
        via_bytes.file,
        parse(std::str::from_utf8(&shop).unwrap()).file
    );
}

#[test]
fn crlf_line_endings_parse_like_lf() {
    let lf = read(&data_dir("ok").join("shop.cairn"));
    let crlf = lf.replace('\n', "\r\n");
    let (lf, crlf) = (parse(&lf), parse(&crlf));
    assert!(crlf.diagnostics.is_empty(), "{:?}", crlf.diagnostics);
    assert_eq!(crlf.file.items.len(), lf.file.items.len());
    for (a, b) in lf.file.items.iter().zip(&crlf.file.items) {
        assert_eq!(a.kind.keyword(), b.kind.keyword());
        assert_eq!(
            a.kind.name().map(|n| &n.name),
            b.kind.name().map(|n| &n.name)
        );
        assert_eq!(a.doc, b.doc);
    }
    // Comments never keep the `\r`.
    assert!(crlf.file.comments.iter().all(|c| !c.text.ends_with('\r')));
}

/// With `\r\n` line endings an error is still on the right line and column, its label
/// does not swallow the `\r`, and the item after it parses.
#[test]
fn crlf_error_location() {
    let src = "journey welcome {\r\n  when contact created\r\n  send email\r\n}\r\n\r\ntag vip\r\n";
    let parsed = parse(src);
    assert_eq!(parsed.diagnostics.len(), 1, "{:?}", parsed.diagnostics);
    let d = &parsed.diagnostics[0];
    assert_eq!(d.code, "E0001");
    let at = d.primary_span().unwrap();
    let index = LineIndex::new(src);
    let place = index.line_col(src, at.start);
    assert_eq!((place.line, place.column), (3, 13), "{d:?}");
    assert!(!src[at.start..at.end].contains('\r'));
    assert_eq!(parsed.file.items[1].kind.keyword(), "tag");
    let rendered = render_diagnostics("crlf.cairn", src, &parsed.diagnostics);
    assert!(rendered.contains("[crlf.cairn:3:13]"), "{rendered}");
    assert!(!rendered.contains('\r'), "{rendered:?}");

    // A literal error, reported by the tree builder rather than pest.
    let src = "journey welcome {\r\n  when contact created\r\n  wait 5x\r\n}\r\n";
    let parsed = parse(src);
    let at = parsed.diagnostics[0].primary_span().unwrap();
    assert_eq!(&src[at.start..at.end], "x");
    let place = LineIndex::new(src).line_col(src, at.start);
    assert_eq!((place.line, place.column), (3, 9));
}

#[test]
fn five_megabytes() {
    let mut src = String::with_capacity(5_300_000);
    let mut n = 0;
    while src.len() < 5_000_000 {
        src.push_str(&JOURNEY.replace("%N", &n.to_string()));
        src.push('\n');
        n += 1;
    }
    let parsed = parse(&src);
    assert!(
        parsed.diagnostics.is_empty(),
        "{:?}",
        parsed.diagnostics.first()
    );
    assert_eq!(parsed.file.items.len(), n);
    let last = parsed.file.items.last().unwrap();
    assert_eq!(
        last.kind.name().map(|i| i.name.clone()),
        Some(format!("welcome_{}", n - 1))
    );
    assert_eq!(last.span.end, src.trim_end().len());
    assert!(
        last.doc
            .as_deref()
            .is_some_and(|d| d.starts_with("Welcome series"))
    );
}

/// Runs in the test's own thread (2 MiB of stack): the depth limit must stop the
/// parser long before the stack runs out.
#[test]
fn deeply_nested_ifs() {
    let depth = 200;
    let mut src = String::from("journey deep {\n  when x\n");
    for _ in 0..depth {
        src.push_str("if a {\n");
    }
    src.push_str("exit\n");
    for _ in 0..depth {
        src.push_str("}\n");
    }
    src.push_str("}\n\ntag after_the_deep_one\n");
    let parsed = parse(&src);
    let codes: Vec<&str> = parsed.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["E0006"], "{:?}", parsed.diagnostics);
    // The journey brace plus 64 `if` braces are fine; the 65th `if` brace is too deep.
    let too_deep = src.match_indices('{').nth(64).unwrap().0;
    assert_eq!(
        parsed.diagnostics[0].primary_span(),
        Some(Span::new(too_deep, too_deep + 1))
    );
    assert_eq!(parsed.file.items.len(), 2);
    assert_eq!(parsed.file.items[0].kind, ItemKind::Error);
    assert_eq!(parsed.file.items[1].kind.keyword(), "tag");
}

#[test]
fn nesting_at_the_limit_parses() {
    // 64 levels of brackets in all: the journey brace, then 63 `if` braces.
    let mut src = String::from("journey deep {\n  when x\n");
    for _ in 0..63 {
        src.push_str("if a {\n");
    }
    src.push_str("exit\n");
    for _ in 0..64 {
        src.push_str("}\n");
    }
    let parsed = parse(&src);
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
}

#[test]
fn deeply_nested_parens() {
    let depth = 10_000;
    let src = format!(
        "segment s {{ {}a{} }}\ntag t\n",
        "(".repeat(depth),
        ")".repeat(depth)
    );
    let parsed = parse(&src);
    let codes: Vec<&str> = parsed.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["E0006"]);
    assert_eq!(parsed.file.items[1].kind.keyword(), "tag");
}

#[test]
fn ten_thousand_nots() {
    let src = format!("segment s {{ {}a }}\ntag t\n", "not ".repeat(10_000));
    let parsed = parse(&src);
    let codes: Vec<&str> = parsed.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["E0006"], "{:?}", parsed.diagnostics);
    assert_eq!(parsed.file.items.len(), 2);
    assert_eq!(parsed.file.items[1].kind.keyword(), "tag");

    // Up to the limit, prefixes are fine.
    let src = format!("segment s {{ {}a }}", "not ".repeat(64));
    let parsed = parse(&src);
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
}

#[test]
fn long_operator_chains() {
    // 2,000 operators: over the limit of 1,000, one located error, no stack overflow.
    let src = format!("segment s {{ a{} }}\ntag t\n", " and a".repeat(2_000));
    let parsed = parse(&src);
    let codes: Vec<&str> = parsed.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["E0006"], "{:?}", parsed.diagnostics);
    let start = src.find('a').unwrap();
    assert_eq!(
        parsed.diagnostics[0].primary_span(),
        Some(Span::new(start, src.find(" }").unwrap()))
    );
    assert_eq!(parsed.file.items[1].kind.keyword(), "tag");

    // 1,000 operators are accepted and build a left-leaning tree 1,000 deep.
    let src = format!("segment s {{ a{} }}", " + 1".repeat(1_000));
    let parsed = parse(&src);
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    let ItemKind::Segment(segment) = &parsed.file.items[0].kind else {
        panic!("not a segment: {:?}", parsed.file.items[0].kind);
    };
    let mut depth = 0;
    let mut expr = &segment.condition;
    while let ExprKind::Binary(BinaryOp::Add, left, _) = &expr.kind {
        depth += 1;
        expr = left;
    }
    assert_eq!(depth, 1_000);
}

// ------------------------------------------------------------------ properties

/// Words and punctuation of the language, to build inputs that get past the first token.
const VOCABULARY: &[&str] = &[
    "journey",
    "when",
    "send",
    "email",
    "sms",
    "push",
    "wait",
    "for",
    "until",
    "if",
    "else",
    "split",
    "tag",
    "add",
    "score",
    "set",
    "retry",
    "goal",
    "exit",
    "segment",
    "contact",
    "event",
    "record",
    "template",
    "test",
    "expect",
    "at",
    "quiet",
    "hours",
    "frequency",
    "cap",
    "per",
    "not",
    "and",
    "or",
    "in",
    "is",
    "where",
    "within",
    "timeout",
    "a",
    "b",
    "x_1",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ",",
    ":",
    ";",
    "\n",
    "\r\n",
    "\t",
    "=",
    "==",
    "!=",
    "<",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "..",
    "->",
    ".",
    "%",
    "50%",
    "7d",
    "6 months",
    "5x",
    "10 mo",
    "09:00",
    "25:00",
    "2026-03-01",
    "2026-02-30",
    "2026-03-01T10:00Z",
    "80 EUR",
    "12.5",
    "+5",
    "\"",
    "\"s\"",
    "\"\"\"",
    "\"\\q\"",
    "//",
    "///",
    "é",
    "名前",
    "🎉",
    "\u{FEFF}",
    "\0",
];

fn soup() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            4 => proptest::sample::select(VOCABULARY).prop_map(str::to_string),
            1 => any::<char>().prop_map(String::from),
        ],
        0..80,
    )
    .prop_map(|tokens| tokens.join(" "))
}

fn ok_sources() -> &'static [String] {
    static SOURCES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    SOURCES.get_or_init(|| data_files("ok").iter().map(|p| read(p)).collect())
}

#[derive(Debug, Clone)]
enum Mutation {
    None,
    Delete { at: usize, len: usize },
    Duplicate { at: usize, len: usize },
    Insert { at: usize, text: &'static str },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<usize>();
    prop_oneof![
        1 => Just(Mutation::None),
        3 => (at, 0..40usize).prop_map(|(at, len)| Mutation::Delete { at, len }),
        2 => (at, 0..200usize).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
        3 => (at, proptest::sample::select(VOCABULARY))
            .prop_map(|(at, text)| Mutation::Insert { at, text }),
    ]
}

fn floor_boundary(s: &str, mut at: usize) -> usize {
    at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(src: &str, m: &Mutation) -> String {
    let pick = |at: usize| floor_boundary(src, at % (src.len() + 1));
    match *m {
        Mutation::None => src.to_string(),
        Mutation::Delete { at, len } => {
            let from = pick(at);
            let to = floor_boundary(src, from + len);
            format!("{}{}", &src[..from], &src[to..])
        }
        Mutation::Duplicate { at, len } => {
            let from = pick(at);
            let to = floor_boundary(src, from + len);
            format!("{}{}", &src[..to], &src[from..])
        }
        Mutation::Insert { at, text } => {
            let at = pick(at);
            format!("{}{text}{}", &src[..at], &src[at..])
        }
    }
}

proptest! {
    // 256 cases keep the suite fast; `PROPTEST_CASES=100000` digs deeper. The seed is
    // fixed so CI is repeatable; `PROPTEST_SEED=N` explores other inputs.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256),
        rng_seed: proptest::test_runner::RngSeed::Fixed(
            std::env::var("PROPTEST_SEED").ok().and_then(|n| n.parse().ok()).unwrap_or(0xCA12),
        ),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Any bytes at all: no panic, and every diagnostic points inside the input.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let parsed = parse_bytes(&bytes);
        for d in &parsed.diagnostics {
            for label in &d.labels {
                prop_assert!(label.span.start <= label.span.end && label.span.end <= bytes.len());
            }
        }
    }

    /// Text made of the language's own words: no panic, diagnostics inside the input and
    /// on character boundaries, items in order.
    #[test]
    fn token_soup_never_panics(src in soup()) {
        let parsed = parse(&src);
        assert_diagnostics_in_bounds(&src, &parsed.diagnostics);
        assert_items_in_order(&src, &parsed);
    }

    /// For every ok file, every diagnostic-free parse of it or of a mutation of it has
    /// items whose spans are in order and inside the file.
    #[test]
    fn ok_files_keep_items_in_order(file in any::<prop::sample::Index>(), m in mutation()) {
        let sources = ok_sources();
        let src = apply(&sources[file.index(sources.len())], &m);
        let parsed = parse(&src);
        assert_diagnostics_in_bounds(&src, &parsed.diagnostics);
        if parsed.diagnostics.is_empty() {
            check_spans(&src, &parsed.file);
        }
        assert_items_in_order(&src, &parsed);
    }
}

fn assert_items_in_order(src: &str, parsed: &Parsed) {
    let mut previous_end = 0;
    for item in &parsed.file.items {
        assert_span_in(src, item.span, "item");
        assert!(item.span.start >= previous_end, "items out of order");
        previous_end = item.span.end;
    }
}
