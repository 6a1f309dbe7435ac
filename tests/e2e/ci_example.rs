//! `examples/ci/cairn.yml`: the GitHub Actions workflow in the docs is valid YAML, and
//! every `cairn` command it runs exists with the flags and formats it passes, so the
//! example cannot drift from the command line.

use crate::support::{repo_root, run_in};
use yaml_rust2::{Yaml, YamlLoader};

/// The shell lines of every step's `run`, with `\` continuations joined.
fn run_scripts(workflow: &Yaml) -> Vec<String> {
    let mut scripts = Vec::new();
    let Some(jobs) = workflow["jobs"].as_hash() else {
        return scripts;
    };
    for job in jobs.values() {
        for step in job["steps"].as_vec().into_iter().flatten() {
            if let Some(run) = step["run"].as_str() {
                scripts.push(run.replace("\\\n", " "));
            }
        }
    }
    scripts
}

/// `line` without its command substitutions (`$(date ...)`), whose words are another
/// command's.
fn without_substitutions(line: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek() == Some(&'(') {
            chars.next();
            depth += 1;
            out.push_str("SUBSTITUTION");
        } else if c == ')' && depth > 0 {
            depth -= 1;
        } else if depth == 0 {
            out.push(c);
        }
    }
    out
}

/// Each `cairn SUBCOMMAND ...` invocation: the subcommand and the words after it.
fn invocations(script: &str) -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    for line in script.lines() {
        let line = without_substitutions(line);
        let words: Vec<&str> = line.split_whitespace().collect();
        for (i, word) in words.iter().enumerate() {
            if *word == "cairn"
                && let Some(sub) = words.get(i + 1)
                && sub.chars().all(|c| c.is_ascii_lowercase())
            {
                let rest = words[i + 2..]
                    .iter()
                    .take_while(|w| !matches!(**w, "|" | ">>" | ">" | "&&" | "||" | ";"))
                    .map(|w| w.to_string())
                    .collect();
                found.push((sub.to_string(), rest));
            }
        }
    }
    found
}

#[test]
fn the_ci_workflow_is_valid_and_uses_real_commands() {
    let path = repo_root().join("examples/ci/cairn.yml");
    let text = std::fs::read_to_string(&path).expect("examples/ci/cairn.yml");
    let docs = YamlLoader::load_from_str(&text).expect("the workflow is valid YAML");
    assert_eq!(docs.len(), 1, "one YAML document");
    let workflow = &docs[0];
    assert!(
        !workflow["on"]["pull_request"].is_badvalue(),
        "the review job runs on pull requests"
    );
    assert_eq!(
        workflow["on"]["push"]["branches"][0].as_str(),
        Some("main"),
        "deploys run on pushes to main"
    );
    for job in ["review", "deploy"] {
        assert!(
            workflow["jobs"][job]["steps"]
                .as_vec()
                .is_some_and(|s| !s.is_empty()),
            "job `{job}` has steps"
        );
    }

    let top = run_in(&repo_root(), &["--help"]);
    assert_eq!(top.code, 0, "{}", top.stderr);
    let mut used: Vec<String> = Vec::new();
    for script in run_scripts(workflow) {
        for (sub, args) in invocations(&script) {
            assert!(
                top.stdout
                    .lines()
                    .any(|l| l.split_whitespace().next() == Some(sub.as_str())),
                "`cairn {sub}` in the workflow is not a command:\n{}",
                top.stdout
            );
            let help = run_in(&repo_root(), &[sub.as_str(), "--help"]);
            assert_eq!(help.code, 0, "{}", help.stderr);
            for (i, arg) in args.iter().enumerate() {
                if !arg.starts_with('-') {
                    continue;
                }
                let flag = arg.split('=').next().unwrap_or(arg);
                assert!(
                    help.stdout
                        .split(|c: char| c.is_whitespace() || c == ',')
                        .any(|w| w == flag),
                    "`cairn {sub} {flag}` in the workflow is not a flag of `cairn {sub}`:\n{}",
                    help.stdout
                );
                if flag == "--format"
                    && let Some(value) = args.get(i + 1)
                {
                    assert!(
                        help.stdout.contains(&format!("{value}:"))
                            || help.stdout.contains(&format!(" {value},"))
                            || help.stdout.contains(&format!(" {value}]")),
                        "`cairn {sub} --format {value}` is not a format of `cairn {sub}`:\n{}",
                        help.stdout
                    );
                }
            }
            used.push(sub);
        }
    }
    for expected in ["check", "test", "diff", "deploy", "simulate"] {
        assert!(
            used.iter().any(|u| u == expected),
            "the workflow runs no `cairn {expected}`: {used:?}"
        );
    }
}
