//! Keeps the VS Code extension's TextMate grammar honest: every regex compiles, the
//! keyword pattern covers every keyword of the grammar (`K_*` in `cairn.pest`), and a
//! small TextMate tokenizer scans every example file line by line without an error,
//! with comments and strings recognised and nothing left open at the end of a file.

use fancy_regex::Regex;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn grammar() -> Value {
    let path = repo().join("editors/vscode/syntaxes/cairn.tmLanguage.json");
    let text = std::fs::read_to_string(&path).expect("the TextMate grammar exists");
    serde_json::from_str(&text).expect("the TextMate grammar is JSON")
}

/// A rule with its regexes compiled and its `include`s resolved.
#[derive(Debug)]
enum Rule {
    Match {
        name: String,
        regex: Regex,
    },
    Region {
        name: String,
        begin: Regex,
        end: Regex,
        patterns: Vec<Rule>,
    },
}

fn compile(source: &str) -> Regex {
    Regex::new(source).unwrap_or_else(|e| panic!("`{source}` does not compile: {e}"))
}

fn rules(patterns: &Value, repository: &Value) -> Vec<Rule> {
    let mut out = Vec::new();
    for p in patterns.as_array().into_iter().flatten() {
        if let Some(include) = p["include"].as_str() {
            let key = include.trim_start_matches('#');
            let entry = &repository[key];
            assert!(!entry.is_null(), "unknown include `{include}`");
            out.extend(rules(&entry["patterns"], repository));
            continue;
        }
        let name = p["name"].as_str().unwrap_or("").to_string();
        if let Some(m) = p["match"].as_str() {
            out.push(Rule::Match {
                name,
                regex: compile(m),
            });
        } else if let (Some(begin), Some(end)) = (p["begin"].as_str(), p["end"].as_str()) {
            out.push(Rule::Region {
                name,
                begin: compile(begin),
                end: compile(end),
                patterns: rules(&p["patterns"], repository),
            });
        } else {
            panic!("a rule with neither `match` nor `begin`/`end`: {p}");
        }
    }
    out
}

/// A scope found on a line: `(start, end, name)` in bytes.
type Scope = (usize, usize, String);

/// Scans `lines` like a TextMate engine: at each position the earliest match wins
/// (the enclosing region's `end` first on ties), regions nest. Returns the scopes of
/// each line and how many regions are still open at the end.
fn tokenize<'r>(root: &'r [Rule], lines: &[&str]) -> (Vec<Vec<Scope>>, usize) {
    let mut stack: Vec<(&'r Regex, &'r [Rule])> = Vec::new();
    let mut out = Vec::new();
    for line in lines {
        let mut scopes = Vec::new();
        let mut pos = 0;
        let mut steps = 0;
        loop {
            steps += 1;
            assert!(steps < 10_000, "the tokenizer loops on `{line}`");
            let patterns = stack.last().map_or(root, |(_, p)| *p);
            let end = stack.last().and_then(|(end, _)| {
                end.find_from_pos(line, pos)
                    .unwrap_or_else(|e| panic!("regex error on `{line}`: {e}"))
            });
            let mut best: Option<(usize, usize, &'r Rule)> = None;
            for rule in patterns {
                let regex = match rule {
                    Rule::Match { regex, .. } => regex,
                    Rule::Region { begin, .. } => begin,
                };
                let found = regex
                    .find_from_pos(line, pos)
                    .unwrap_or_else(|e| panic!("regex error on `{line}`: {e}"));
                if let Some(m) = found
                    && m.end() > m.start()
                    && best.is_none_or(|(s, _, _)| m.start() < s)
                {
                    best = Some((m.start(), m.end(), rule));
                }
            }
            match (end, best) {
                (Some(e), b) if b.is_none_or(|(s, _, _)| e.start() <= s) => {
                    stack.pop();
                    if e.end() == pos && e.start() == pos && pos >= line.len() {
                        break;
                    }
                    pos = e.end();
                }
                (_, Some((start, finish, rule))) => {
                    match rule {
                        Rule::Match { name, .. } => scopes.push((start, finish, name.clone())),
                        Rule::Region {
                            name,
                            end,
                            patterns,
                            ..
                        } => {
                            scopes.push((start, finish, name.clone()));
                            stack.push((end, patterns));
                        }
                    }
                    pos = finish;
                }
                _ => break,
            }
            if pos > line.len() {
                break;
            }
        }
        out.push(scopes);
    }
    (out, stack.len())
}

#[test]
fn every_grammar_keyword_is_highlighted_as_a_keyword() {
    let grammar = grammar();
    let pattern = grammar["repository"]["keywords"]["patterns"][0]["match"]
        .as_str()
        .expect("a keyword pattern");
    let keywords = compile(pattern);
    let pest =
        std::fs::read_to_string(repo().join("grammar/src/cairn.pest")).expect("the grammar source");
    let mut count = 0;
    for line in pest.lines().filter(|l| l.starts_with("K_")) {
        let word = line.split('"').nth(1).expect("a quoted keyword");
        let found = keywords.find(word).expect("the regex runs");
        assert_eq!(
            found.map(|m| m.as_str()),
            Some(word),
            "keyword `{word}` is not matched whole"
        );
        let inside = format!("x{word}y");
        assert!(
            keywords.find(&inside).expect("the regex runs").is_none(),
            "`{word}` matches inside a longer name"
        );
        count += 1;
    }
    assert!(count > 90, "only {count} keywords found in cairn.pest");
}

#[test]
fn every_example_scans_cleanly() {
    let grammar = grammar();
    assert_eq!(grammar["scopeName"], "source.cairn");
    let root = rules(&grammar["patterns"], &grammar["repository"]);
    let mut files = Vec::new();
    for project in std::fs::read_dir(repo().join("examples"))
        .expect("examples")
        .flatten()
    {
        for entry in std::fs::read_dir(project.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry.path().extension().is_some_and(|e| e == "cairn") {
                files.push(entry.path());
            }
        }
    }
    assert!(files.len() >= 14, "examples found: {}", files.len());
    let mut comments = 0;
    let mut strings = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).expect("an example");
        let lines: Vec<&str> = text.lines().collect();
        let (scopes, open) = tokenize(&root, &lines);
        assert_eq!(open, 0, "{} leaves a region open", file.display());
        for (line, found) in lines.iter().zip(&scopes) {
            let trimmed = line.trim_start();
            if trimmed.starts_with("//") {
                let column = line.len() - trimmed.len();
                assert!(
                    found
                        .iter()
                        .any(|(s, _, n)| *s == column && n.starts_with("comment.")),
                    "{}: `{line}` is not a comment: {found:?}",
                    file.display()
                );
                comments += 1;
            }
            if let Some(quote) = line.find('"')
                && !trimmed.starts_with("//")
                && !line[..quote].contains("//")
            {
                assert!(
                    found
                        .iter()
                        .any(|(s, _, n)| *s == quote && n.starts_with("string.")),
                    "{}: the string on `{line}` is not a string: {found:?}",
                    file.display()
                );
                strings += 1;
            }
        }
    }
    assert!(
        comments > 10 && strings > 10,
        "{comments} comments, {strings} strings"
    );
}

#[test]
fn a_journey_line_gets_its_scopes() {
    let grammar = grammar();
    let root = rules(&grammar["patterns"], &grammar["repository"]);
    let line = "  remind: send email cart_reminder at best time // ok";
    let (scopes, _) = tokenize(&root, &[line]);
    let names: Vec<(&str, &str)> = scopes[0]
        .iter()
        .map(|(s, e, n)| (&line[*s..*e], n.as_str()))
        .collect();
    assert!(
        names.iter().any(|(t, _)| t.trim_start() == "remind:"),
        "{names:?}"
    );
    assert!(
        names.contains(&("send", "keyword.control.cairn")),
        "{names:?}"
    );
    assert!(
        names.contains(&("// ok", "comment.line.double-slash.cairn")),
        "{names:?}"
    );
    let (scopes, open) = tokenize(
        &root,
        &[
            "wait 6 months",
            "at 2026-03-01T10:00Z",
            "  \"\"\"",
            "x",
            "\"\"\"",
        ],
    );
    assert_eq!(open, 0);
    assert_eq!(scopes[0][1].2, "constant.numeric.duration.cairn");
    assert_eq!(scopes[1][1].2, "constant.numeric.datetime.cairn");
}
