//! The fast parser against the pest grammar, item by item (`cairn_grammar::parse::verify`):
//! the fast parser accepts exactly the items pest accepts without a diagnostic and
//! builds the same tree with the same spans, and rejects exactly what pest rejects.
//! Items pest accepts with a diagnostic, and items holding a `"""` string, it leaves to
//! pest. The inputs:
//!
//! - every `.cairn` file under `grammar/tests/data/` and `examples/`, and every input
//!   of the fuzzing corpus (`fuzz/corpus/parse/`);
//! - generated projects (`synth::project`) of random size and seed;
//! - items of all of those, mutated: bytes deleted, duplicated or swapped, tokens of the
//!   language inserted anywhere.
//!
//! Runs use a fixed seed and stay within seconds in a debug build. For a longer hunt:
//! `CAIRN_PROPTEST_CASES=20000 CAIRN_PROPTEST_SEED=random cargo test -p cairn-grammar
//! --test differential`.

use cairn_grammar::parse::{Agreement, parse_reference, verify};
use cairn_grammar::{parse, synth};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn collect(dir: &Path, filter: &dyn Fn(&Path) -> bool, out: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect(&path, filter, out);
        } else if filter(&path) {
            out.push(path);
        }
    }
}

fn cairn_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    collect(
        dir,
        &|p| p.extension().is_some_and(|e| e == "cairn"),
        &mut out,
    );
    out.sort();
    out
}

fn add(total: &mut Agreement, one: Agreement) {
    total.same_tree += one.same_tree;
    total.both_rejected += one.both_rejected;
    total.delegated += one.delegated;
}

/// Verifies one source and checks that `parse` gives what pest alone gives.
fn check(name: &str, src: &str) -> Result<Agreement, String> {
    let agreement = verify(src).map_err(|e| format!("{name}: {e}"))?;
    let fast = parse(src);
    let reference = parse_reference(src);
    if fast.file != reference.file {
        return Err(format!(
            "{name}: parse and parse_reference give different files"
        ));
    }
    if fast.diagnostics != reference.diagnostics {
        return Err(format!(
            "{name}: parse and parse_reference give different diagnostics"
        ));
    }
    Ok(agreement)
}

// ------------------------------------------------------------------ files on disk

#[test]
fn data_and_example_files_agree() {
    let mut files = cairn_files(&root().join("tests/data"));
    let data = files.len();
    files.extend(cairn_files(&root().join("../examples")));
    assert!(data >= 90, "only {data} data files found");
    assert!(files.len() >= data + 14, "too few example files found");
    let mut total = Agreement::default();
    for path in &files {
        let src = std::fs::read_to_string(path).expect("a readable file");
        add(
            &mut total,
            check(&path.display().to_string(), &src).unwrap_or_else(|e| panic!("{e}")),
        );
    }
    // Enough of each outcome for the comparison to mean something.
    assert!(total.same_tree >= 300, "{total:?}");
    assert!(total.both_rejected >= 40, "{total:?}");
    assert!(total.delegated >= 5, "{total:?}");
}

#[test]
fn fuzz_corpus_agrees() {
    let mut files = Vec::new();
    collect(&root().join("../fuzz/corpus/parse"), &|_| true, &mut files);
    files.sort();
    assert!(files.len() >= 50, "only {} corpus files", files.len());
    let mut total = Agreement::default();
    for path in &files {
        let bytes = std::fs::read(path).expect("a corpus file");
        let Ok(src) = std::str::from_utf8(&bytes) else {
            continue;
        };
        add(
            &mut total,
            check(&path.display().to_string(), src).unwrap_or_else(|e| panic!("{e}")),
        );
    }
    assert!(total.same_tree >= 20, "{total:?}");
    assert!(total.both_rejected >= 20, "{total:?}");
}

// ------------------------------------------------------------------ generated sources

/// A CI-sized run with a fixed seed, so a run never fails by chance; more cases with
/// `CAIRN_PROPTEST_CASES=N`, another seed with `CAIRN_PROPTEST_SEED=N` or `=random`.
fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("CAIRN_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    let rng_seed = match std::env::var("CAIRN_PROPTEST_SEED").ok().as_deref() {
        Some("random") => RngSeed::Random,
        Some(n) => RngSeed::Fixed(n.parse().expect("CAIRN_PROPTEST_SEED is a number")),
        None => RngSeed::Fixed(0xFA57),
    };
    ProptestConfig {
        cases,
        rng_seed,
        max_shrink_time: 60_000,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cases(6))]

    /// A generated project is clean, so every item takes the fast path.
    #[test]
    fn generated_projects_agree(lines in 300usize..1_200, seed in any::<u64>()) {
        for (name, src) in synth::project(lines, seed) {
            let name = format!("synth::project({lines}, {seed}) {name}");
            let agreement = check(&name, &src).map_err(TestCaseError::fail)?;
            prop_assert_eq!(agreement.both_rejected + agreement.delegated, 0, "{}", name);
        }
    }
}

/// The text of every item of the data files, the examples and a generated project:
/// what the mutations start from.
static ITEMS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut sources: Vec<String> = cairn_files(&root().join("tests/data"))
        .iter()
        .chain(cairn_files(&root().join("../examples")).iter())
        .map(|p| std::fs::read_to_string(p).expect("a readable file"))
        .collect();
    sources.extend(synth::project(300, 11).into_iter().map(|(_, text)| text));
    let mut items = Vec::new();
    for src in &sources {
        let parsed = parse(src);
        let mut starts: Vec<usize> = parsed.file.items.iter().map(|i| i.span.start).collect();
        starts.push(src.len());
        for pair in starts.windows(2) {
            let text = src[pair[0]..pair[1]].trim_end();
            // Keep the mutated inputs small: a long journey is cut at a line end.
            let cut = text
                .char_indices()
                .filter(|&(i, c)| c == '\n' && i > 1_500)
                .map(|(i, _)| i)
                .next()
                .unwrap_or(text.len());
            items.push(text[..cut].to_string());
        }
    }
    assert!(items.len() > 200, "only {} items to mutate", items.len());
    items
});

/// Pieces of the language a mutation inserts.
const TOKENS: &[&str] = &[
    "\n",
    "\n\n",
    ";",
    ",",
    " ",
    "\t",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ":",
    "=",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    "->",
    "..",
    ".",
    "|",
    "?",
    "+",
    "-",
    "*",
    "/",
    "%",
    "\"",
    "\"\"\"",
    "\\",
    "// c\n",
    "/// doc\n",
    "\u{FEFF}",
    "\r\n",
    "\r",
    "and ",
    " or ",
    " not ",
    " in ",
    " is ",
    " set",
    "as ",
    " where ",
    " within ",
    " unless ",
    "true",
    "false",
    " else ",
    "timeout ",
    " to ",
    " at ",
    "send ",
    "email ",
    "sms ",
    "push ",
    "wait ",
    "for ",
    "until ",
    "if ",
    "split ",
    "tag ",
    "score ",
    "set ",
    "retry ",
    "goal ",
    "exit ",
    "when ",
    "audience ",
    "reenter ",
    "after ",
    "migrate ",
    "drain",
    "quiet hours ",
    "frequency cap ",
    "local",
    "journey ",
    "segment ",
    "contact ",
    "event ",
    "record ",
    "enum ",
    "list<",
    "expect ",
    "no ",
    "nothing ",
    "sends ",
    "x",
    "_y",
    "a1",
    "7",
    "07",
    "2h",
    "5 days",
    "6 months",
    "3 mo",
    "10d",
    "99999999999d",
    "4294967296",
    "12.5",
    "50%",
    "+5",
    "-5",
    "80 EUR",
    "09:00",
    "25:00",
    "2026-03-01",
    "2026-02-30",
    "2026-03-01T10:00Z",
    "2026-03-01T10:00:30+02:00",
    "2026-03-01T24:00Z",
    "\"a\"",
    "\"a\\nb\"",
    "\"a\\qb\"",
    "\"\"\"x\"\"\"",
    "count(",
    "x.y",
    "é",
    "“",
];

#[derive(Clone, Debug)]
enum Mutation {
    Delete { at: f64, len: usize },
    Insert { at: f64, token: usize },
    Duplicate { at: f64, len: usize },
    Swap { at: f64, len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = 0.0..1.0f64;
    prop_oneof![
        (at.clone(), 1usize..12).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (at.clone(), 0..TOKENS.len()).prop_map(|(at, token)| Mutation::Insert { at, token }),
        (at.clone(), 1usize..20).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
        (at, 1usize..8).prop_map(|(at, len)| Mutation::Swap { at, len }),
    ]
}

/// The char boundary at or before `at` (a fraction of the text).
fn boundary(text: &str, at: f64) -> usize {
    let mut i = ((text.len() as f64) * at) as usize;
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn end_after(text: &str, start: usize, len: usize) -> usize {
    let mut end = (start + len).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    end
}

fn apply(text: &mut String, m: &Mutation) {
    match *m {
        Mutation::Delete { at, len } => {
            let start = boundary(text, at);
            let end = end_after(text, start, len);
            text.replace_range(start..end, "");
        }
        Mutation::Insert { at, token } => {
            let at = boundary(text, at);
            text.insert_str(at, TOKENS[token]);
        }
        Mutation::Duplicate { at, len } => {
            let start = boundary(text, at);
            let end = end_after(text, start, len);
            let copy = text[start..end].to_string();
            text.insert_str(end, &copy);
        }
        Mutation::Swap { at, len } => {
            let start = boundary(text, at);
            let middle = end_after(text, start, len);
            let end = end_after(text, middle, len);
            let first = text[start..middle].to_string();
            let second = text[middle..end].to_string();
            text.replace_range(start..end, &format!("{second}{first}"));
        }
    }
}

proptest! {
    #![proptest_config(cases(1_500))]

    #[test]
    fn mutated_items_agree(
        picks in proptest::collection::vec(any::<prop::sample::Index>(), 1..3),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let mut src = picks
            .iter()
            .map(|i| ITEMS[i.index(ITEMS.len())].as_str())
            .collect::<Vec<_>>()
            .join("\n\n");
        for m in &mutations {
            apply(&mut src, m);
        }
        check("mutated source", &src).map_err(TestCaseError::fail)?;
    }
}
