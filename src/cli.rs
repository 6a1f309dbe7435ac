//! The command-line surface: every command, flag and format, in one place.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "cairn",
    version,
    about = "Journey-as-code for marketing automation",
    long_about = "Journey-as-code for marketing automation.\n\n\
        Write contacts, events, segments, templates and journeys in `.cairn` files, \
        check them, test them and run them.",
    after_help = "Exit codes: 0 success (warnings allowed), 1 errors in the input or failed tests, \
        2 usage or environment errors."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check projects for errors and warnings
    Check(CheckArgs),
    /// Format `.cairn` files canonically, keeping comments
    Fmt(FmtArgs),
    /// Explain an error or warning code, such as `cairn explain E0304`
    Explain(ExplainArgs),
    /// Compile a project to the plan JSON the runtime executes
    Build(BuildArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The project directory or `.cairn` file [default: .]
    pub path: Option<PathBuf>,
    /// Write the plan to this file instead of standard output
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Files, project directories, or folders holding projects [default: .]
    pub paths: Vec<PathBuf>,
    /// How to print the findings
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Treat warnings as errors (exit 1)
    #[arg(long)]
    pub deny_warnings: bool,
    /// Write the report to this file instead of standard output
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct FmtArgs {
    /// Files, project directories, or folders holding projects [default: .]
    pub paths: Vec<PathBuf>,
    /// Change nothing; list the files that are not formatted and exit 1 if any
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The code (`E0304`, `W0001`); without one, list every code
    pub code: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Source snippets with labels and help, for people
    Human,
    /// One JSON document
    Json,
    /// One JSON object per line
    Jsonl,
    /// GitHub Actions workflow commands (annotations on the pull request)
    Github,
    /// SARIF 2.1.0, for code scanning tools
    Sarif,
}

/// The paths a command works on, `.` when none are given.
pub fn paths_or_current(paths: &[PathBuf]) -> Vec<PathBuf> {
    if paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        paths.to_vec()
    }
}
