//! One module per command.

mod build;
mod check;
mod explain;
mod fmt;

use crate::Outcome;
use crate::cli::{Cli, Command};

pub type CommandResult = miette::Result<Outcome>;

pub fn run(cli: Cli) -> CommandResult {
    match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Fmt(args) => fmt::run(&args),
        Command::Explain(args) => explain::run(&args),
        Command::Build(args) => build::run(&args),
    }
}
