//! One module per command.

mod bench;
mod build;
mod check;
mod contacts;
mod deploy;
mod diff;
mod explain;
mod fmt;
mod graph;
mod lsp;
mod serve;
mod serve_channels;
mod simulate;
mod stats;
mod status;
mod test;

use crate::Outcome;
use crate::cli::{Cli, Command};

pub type CommandResult = miette::Result<Outcome>;

pub fn run(cli: Cli) -> CommandResult {
    match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Fmt(args) => fmt::run(&args),
        Command::Explain(args) => explain::run(&args),
        Command::Test(args) => test::run(&args),
        Command::Graph(args) => graph::run(&args),
        Command::Simulate(args) => simulate::run(&args),
        Command::Build(args) => build::run(&args),
        Command::Lsp => lsp::run(),
        Command::Serve(args) => serve::run(&args),
        Command::Deploy(args) => deploy::run(&args),
        Command::Status(args) => status::run(&args),
        Command::Contacts(command) => contacts::run(&command),
        Command::Stats(args) => stats::run(&args),
        Command::Diff(args) => diff::run(&args),
        Command::Bench(args) => bench::run(&args),
    }
}
