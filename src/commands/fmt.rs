//! `cairn fmt`: the canonical layout, in place or as a check.

use super::CommandResult;
use crate::Outcome;
use crate::cli::{FmtArgs, paths_or_current};
use crate::render;
use cairn_compiler::project;

pub fn run(args: &FmtArgs) -> CommandResult {
    let projects = project::discover(&paths_or_current(&args.paths))?;
    let mut unformatted = 0;
    let mut broken = 0;
    let mut total = 0;
    for source in projects.iter().flat_map(|p| &p.sources) {
        total += 1;
        if let Some(error) = &source.utf8_error {
            eprintln!("{}", render::diagnostic(error, &source.path, &source.text));
            broken += 1;
            continue;
        }
        match cairn_grammar::format(&source.text) {
            Ok(formatted) if formatted == source.text => {}
            Ok(formatted) => {
                unformatted += 1;
                if args.check {
                    crate::render::out(&format!("{}\n", source.path.display()));
                } else if let Err(e) = std::fs::write(&source.path, formatted) {
                    eprintln!("error: cannot write `{}`: {e}", source.path.display());
                    broken += 1;
                }
            }
            Err(error) => {
                broken += 1;
                for d in &error.diagnostics {
                    eprintln!("{}", render::diagnostic(d, &source.path, &source.text));
                }
            }
        }
    }
    let verb = if args.check {
        "need formatting"
    } else {
        "formatted"
    };
    eprintln!(
        "{}: {unformatted} {verb}{}",
        render::plural(total, "file"),
        if broken > 0 {
            format!(", {broken} not formatted because of errors")
        } else {
            String::new()
        }
    );
    Ok(if broken > 0 || (args.check && unformatted > 0) {
        Outcome::Failed
    } else {
        Outcome::Ok
    })
}
