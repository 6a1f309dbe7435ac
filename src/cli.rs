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
    /// Run the `test` blocks of projects on a virtual clock
    Test(TestArgs),
    /// Draw a journey as a flow chart (Mermaid or Graphviz DOT)
    Graph(GraphArgs),
    /// Explain an error or warning code, such as `cairn explain E0304`
    Explain(ExplainArgs),
    /// Compile a project to the plan JSON the runtime executes
    Build(BuildArgs),
    /// Run the language server over standard input and output, for editors
    Lsp,
    /// Run the daemon for a project: ingest events, run journeys, send messages
    Serve(ServeArgs),
    /// Build a project and send its plan to a daemon as a new version
    Deploy(DeployArgs),
    /// Show a daemon's plan versions, journeys and the runs at each step
    Status(StatusArgs),
    /// Measure a daemon's ingestion throughput over loopback
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The project whose plan the daemon runs and whose events are sent [default: .]
    pub project: Option<PathBuf>,
    /// Events to send in all
    #[arg(long, default_value_t = 100_000)]
    pub events: usize,
    /// Events per `/v1/batch` request
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Requests in flight at once
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Distinct contacts the events belong to
    #[arg(long, default_value_t = 10_000)]
    pub contacts: usize,
    /// The in-process daemon's store [default: a temporary SQLite file]
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    /// Drive a running daemon instead of starting one
    #[arg(long, value_name = "URL", requires = "write_key")]
    pub server: Option<String>,
    /// The running daemon's write key [env: CAIRN_WRITE_KEY]
    #[arg(long, value_name = "KEY")]
    pub write_key: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The project directory [default: .]
    pub project: Option<PathBuf>,
    /// The address to listen on [env: CAIRN_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// The store: `sqlite:PATH` or `postgres://...` [env: CAIRN_DATABASE_URL]
    /// [default: sqlite in the project's `.cairn/`]
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    /// The address contacts reach the daemon at, for links in messages
    /// [env: CAIRN_PUBLIC_URL]
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The project directory, or a plan JSON file built by `cairn build` [default: .]
    pub path: Option<PathBuf>,
    /// The daemon [env: CAIRN_SERVER] [default: the project's `[serve] listen`, else
    /// 127.0.0.1:8080]
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// The daemon's admin token [env: CAIRN_ADMIN_TOKEN]
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Re-activate the version before the active one instead of deploying
    #[arg(long)]
    pub rollback: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The daemon [env: CAIRN_SERVER] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// The daemon's admin token [env: CAIRN_ADMIN_TOKEN]
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// How to print the status
    #[arg(long, value_enum, default_value_t = StatusFormat::Human)]
    pub format: StatusFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    /// Tables, for people
    Human,
    /// The admin API's JSON
    Json,
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
pub struct TestArgs {
    /// Files, project directories, or folders holding projects [default: .]
    pub paths: Vec<PathBuf>,
    /// Run only the tests whose name contains this text
    #[arg(long)]
    pub filter: Option<String>,
    /// How to report: human text, JUnit XML for CI, or the outcome timeline as JSON lines
    #[arg(long, value_enum, default_value_t = TestFormat::Human)]
    pub format: TestFormat,
    /// Write the report to this file instead of standard output
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TestFormat {
    Human,
    Junit,
    Jsonl,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The journey to draw
    pub journey: String,
    /// The project directory or `.cairn` file [default: .]
    pub path: Option<PathBuf>,
    /// Mermaid renders in pull requests and Markdown; DOT feeds Graphviz
    #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
    pub format: GraphFormat,
    /// Write the chart to this file instead of standard output
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Mermaid,
    Dot,
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
