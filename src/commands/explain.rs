//! `cairn explain`: the long form of a diagnostic code.

use super::CommandResult;
use crate::Outcome;
use crate::cli::ExplainArgs;
use cairn_compiler::codes;

pub fn run(args: &ExplainArgs) -> CommandResult {
    match &args.code {
        None => {
            for info in codes::ALL {
                crate::render::out(&format!("{}  {}\n", info.code, info.title));
            }
            Ok(Outcome::Ok)
        }
        Some(code) => match codes::lookup(code) {
            Some(info) => {
                crate::render::out(&format!(
                    "{}: {}\n\n{}\n",
                    info.code, info.title, info.explanation
                ));
                Ok(Outcome::Ok)
            }
            None => {
                let known: Vec<&str> = codes::ALL.iter().map(|c| c.code).collect();
                let hint = cairn_compiler::suggest::did_you_mean(
                    &code.to_uppercase(),
                    known.iter().copied(),
                )
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
                eprintln!(
                    "error: no diagnostic has the code `{code}`{hint}; `cairn explain` lists them all"
                );
                Ok(Outcome::Usage)
            }
        },
    }
}
