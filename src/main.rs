//! `cairn`: the command line. Each subcommand wires the library crates together; the
//! logic lives in those crates.

mod cli;
mod commands;
mod render;
mod report;

use clap::Parser;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What a command's outcome means to a shell or CI step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Success; warnings allowed.
    Ok,
    /// The user's input has errors, or a test failed.
    Failed,
    /// A usage or environment error: bad flag, unreadable path, unreachable server.
    Usage,
    /// `cairn diff --server`: the daemon cannot be reached.
    Unreachable,
}

impl From<Outcome> for ExitCode {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Ok => ExitCode::SUCCESS,
            Outcome::Failed => ExitCode::from(1),
            Outcome::Usage => ExitCode::from(2),
            Outcome::Unreachable => ExitCode::from(3),
        }
    }
}

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => Outcome::Usage.into(),
            };
        }
    };
    match commands::run(cli) {
        Ok(outcome) => outcome.into(),
        Err(report) => {
            eprintln!("{}", render::report(report.as_ref()));
            Outcome::Usage.into()
        }
    }
}
